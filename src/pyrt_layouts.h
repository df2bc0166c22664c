/* SPDX-License-Identifier: GPL-2.0 */
/*
 * CPython's struct layouts, one entry per minor version, generated into
 * pyrt_layouts.c by scripts/gen-pyoffsets.py from each version's own headers
 * (x86-64, the default build: not Py_DEBUG, not free-threaded). Byte
 * offsets, -1 where the version has no such field. Only pyrt.c reads them.
 */
#ifndef FH_PYRT_LAYOUTS_H
#define FH_PYRT_LAYOUTS_H

#include <stdint.h>

#define PYRT_DBG_MAX	32

struct pyrt_offsets {
	int major, minor;
	const char *measured;		/* the release the headers were from */

	/* _PyRuntimeState; its Py_tss_t autoTSSkey */
	int32_t runtime_interpreters_head, runtime_tss, tss_initialized, tss_key;
	/* PyInterpreterState */
	int32_t interp_next, interp_threads_head, interp_modules;
	/* PyThreadState. tstate_frame: frame (3.10), cframe (3.11, 3.12: then
	 * cframe_current_frame within it), current_frame (3.13) */
	int32_t tstate_next, tstate_interp, tstate_thread_id, tstate_native_thread_id;
	int32_t tstate_frame, cframe_current_frame;
	/* PyFrameObject (3.10) or _PyInterpreterFrame (3.11+). frame_instr:
	 * f_lasti (int, code units), prev_instr (3.11, 3.12) or instr_ptr
	 * (3.13), pointers into co_code_adaptive. Owner values: enum _frameowner */
	int32_t frame_previous, frame_code, frame_instr, frame_instr_size;
	int32_t frame_owner, frame_owner_cstack, frame_owner_generator;
	/* PyCodeObject */
	int32_t code_filename, code_name, code_qualname, code_adaptive, code_firsttraceable;
	int32_t code_linetable, code_firstlineno;
	/* objects */
	int32_t object_type, var_size, bytes_data;
	int32_t unicode_length, unicode_state, unicode_ascii_size, unicode_compact_size;
	int32_t unicode_kind_mask, unicode_compact_mask, unicode_ascii_mask;	/* in the state word */
	int32_t long_tag, long_digits, long_shift, long_digit_size;
	int32_t type_name, type_basicsize, type_dictoffset, type_flags, type_cached_keys;
	int32_t tpflag_managed_dict, tpflag_inline_values;
	int32_t module_dict;
	/* dicts: PyDictObject, PyDictKeysObject, PyDictValues; managed_dict:
	 * where an instance's dict pointer is, from the object (3.11+) */
	int32_t dict_used, dict_keys, dict_values;
	int32_t keys_size, keys_log2_size, keys_log2_index_bytes, keys_kind, keys_nentries;
	int32_t keys_indices, keys_entry_size, keys_unicode_entry_size, keys_kind_general;
	int32_t values_array, values_valid, managed_dict;

	/* _Py_DebugOffsets (3.13+): its size, and where in it each of our
	 * fields is (ours: offsetof(struct pyrt_offsets, field)) */
	int32_t dbg_size;
	int ndbg;
	struct {
		uint16_t ours, theirs;
	} dbg[PYRT_DBG_MAX];
};

extern const struct pyrt_offsets pyrt_layouts[];
extern const int pyrt_nlayouts;

#endif
