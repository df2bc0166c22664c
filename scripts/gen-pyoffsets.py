#!/usr/bin/env python3
"""Generate src/pyrt_layouts.c: the struct offsets forkhazard reads CPython
with, one entry per minor version, measured by compiling a probe program
against that version's own headers (Py_BUILD_CORE: the internal ones too) and
printing offsetof()/sizeof() values. Nothing here is typed in by hand except
3.10's dict keys layout, whose header CPython did not install (see KEYS_310).

    scripts/gen-pyoffsets.py                 write src/pyrt_layouts.c from the
                                             newest pyenv build of each minor
    scripts/gen-pyoffsets.py --check         regenerate in memory and compare
                                             with the committed file, and check
                                             every other installed header set
                                             (e.g. Debian's /usr/include/python3.11)
                                             against its minor's entry
    scripts/gen-pyoffsets.py --prefix DIR    use the Python installed under DIR
                                             (repeatable; DIR/include/python3.X)

Exit status: 0 fine, 1 a difference (printed), 2 bad usage or no compiler.
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "src", "pyrt_layouts.c")
OLDEST = (3, 10)

# Every field of struct pyrt_offsets (src/pyrt_layouts.h) the probe prints, in
# the order of the generated initializer. -1 in the table: the version has no
# such field.
PROBE = r'''
#define Py_BUILD_CORE 1
#include "Python.h"
#include "frameobject.h"
#include "internal/pycore_runtime.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_pystate.h"
#include "internal/pycore_moduleobject.h"
#if PY_VERSION_HEX >= 0x030b0000
#include "internal/pycore_frame.h"
#include "internal/pycore_dict.h"
#include "internal/pycore_object.h"
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define P(name, expr) printf("%s %lld\n", #name, (long long)(expr))
#define NONE(name) printf("%s -1\n", #name)

/* The bits a bitfield of `s` occupies in its 32-bit word. */
#define STATE_MASK(field, width) do {                                   \
        PyASCIIObject o_;                                               \
        uint32_t w_;                                                    \
        memset(&o_, 0, sizeof(o_));                                     \
        o_.state.field = (1u << (width)) - 1;                           \
        memcpy(&w_, &o_.state, sizeof(w_));                             \
        P(unicode_##field##_mask, w_);                                  \
    } while (0)

int main(void)
{
    printf("version %d %d %d\n", PY_MAJOR_VERSION, PY_MINOR_VERSION, PY_MICRO_VERSION);

    /* _PyRuntimeState */
    P(runtime_interpreters_head, offsetof(_PyRuntimeState, interpreters.head));
#if PY_VERSION_HEX >= 0x030c0000
    P(runtime_tss, offsetof(_PyRuntimeState, autoTSSkey));
#else
    P(runtime_tss, offsetof(_PyRuntimeState, gilstate.autoTSSkey));
#endif
    P(tss_initialized, offsetof(Py_tss_t, _is_initialized));
    P(tss_key, offsetof(Py_tss_t, _key));

    /* PyInterpreterState */
    P(interp_next, offsetof(PyInterpreterState, next));
#if PY_VERSION_HEX >= 0x030b0000
    P(interp_threads_head, offsetof(PyInterpreterState, threads.head));
#else
    P(interp_threads_head, offsetof(PyInterpreterState, tstate_head));
#endif
#if PY_VERSION_HEX >= 0x030c0000
    P(interp_modules, offsetof(PyInterpreterState, imports.modules));
#else
    P(interp_modules, offsetof(PyInterpreterState, modules));
#endif

    /* PyThreadState */
    P(tstate_next, offsetof(PyThreadState, next));
    P(tstate_interp, offsetof(PyThreadState, interp));
    P(tstate_thread_id, offsetof(PyThreadState, thread_id));
#if PY_VERSION_HEX >= 0x030b0000
    P(tstate_native_thread_id, offsetof(PyThreadState, native_thread_id));
#else
    NONE(tstate_native_thread_id);
#endif
#if PY_VERSION_HEX >= 0x030d0000
    P(tstate_frame, offsetof(PyThreadState, current_frame));
    NONE(cframe_current_frame);
#elif PY_VERSION_HEX >= 0x030b0000
    P(tstate_frame, offsetof(PyThreadState, cframe));
    P(cframe_current_frame, offsetof(_PyCFrame, current_frame));
#else
    P(tstate_frame, offsetof(PyThreadState, frame));
    NONE(cframe_current_frame);
#endif

    /* frames: PyFrameObject (3.10), _PyInterpreterFrame (3.11+) */
#if PY_VERSION_HEX >= 0x030b0000
    P(frame_previous, offsetof(_PyInterpreterFrame, previous));
# if PY_VERSION_HEX >= 0x030d0000
    P(frame_code, offsetof(_PyInterpreterFrame, f_executable));
    P(frame_instr, offsetof(_PyInterpreterFrame, instr_ptr));
    P(frame_instr_size, sizeof(((_PyInterpreterFrame *)0)->instr_ptr));
# else
    P(frame_code, offsetof(_PyInterpreterFrame, f_code));
    P(frame_instr, offsetof(_PyInterpreterFrame, prev_instr));
    P(frame_instr_size, sizeof(((_PyInterpreterFrame *)0)->prev_instr));
# endif
    P(frame_owner, offsetof(_PyInterpreterFrame, owner));
# if PY_VERSION_HEX >= 0x030c0000
    P(frame_owner_cstack, FRAME_OWNED_BY_CSTACK);
# else
    NONE(frame_owner_cstack);
# endif
    P(frame_owner_generator, FRAME_OWNED_BY_GENERATOR);
#else
    P(frame_previous, offsetof(PyFrameObject, f_back));
    P(frame_code, offsetof(PyFrameObject, f_code));
    P(frame_instr, offsetof(PyFrameObject, f_lasti));
    P(frame_instr_size, sizeof(((PyFrameObject *)0)->f_lasti));
    NONE(frame_owner);
    NONE(frame_owner_cstack);
    NONE(frame_owner_generator);
#endif

    /* PyCodeObject */
    P(code_filename, offsetof(PyCodeObject, co_filename));
    P(code_name, offsetof(PyCodeObject, co_name));
#if PY_VERSION_HEX >= 0x030b0000
    P(code_qualname, offsetof(PyCodeObject, co_qualname));
    P(code_adaptive, offsetof(PyCodeObject, co_code_adaptive));
    P(code_firsttraceable, offsetof(PyCodeObject, _co_firsttraceable));
#else
    NONE(code_qualname);
    NONE(code_adaptive);
    NONE(code_firsttraceable);
#endif
    P(code_linetable, offsetof(PyCodeObject, co_linetable));
    P(code_firstlineno, offsetof(PyCodeObject, co_firstlineno));

    /* objects */
    P(object_type, offsetof(PyObject, ob_type));
    P(var_size, offsetof(PyVarObject, ob_size));
    P(bytes_data, offsetof(PyBytesObject, ob_sval));
    P(unicode_length, offsetof(PyASCIIObject, length));
    P(unicode_state, offsetof(PyASCIIObject, state));
    P(unicode_ascii_size, sizeof(PyASCIIObject));
    P(unicode_compact_size, sizeof(PyCompactUnicodeObject));
    STATE_MASK(kind, 3);
    STATE_MASK(compact, 1);
    STATE_MASK(ascii, 1);
#if PY_VERSION_HEX >= 0x030c0000
    P(long_tag, offsetof(PyLongObject, long_value.lv_tag));
    P(long_digits, offsetof(PyLongObject, long_value.ob_digit));
#else
    NONE(long_tag);
    P(long_digits, offsetof(PyLongObject, ob_digit));
#endif
    P(long_shift, PyLong_SHIFT);
    P(long_digit_size, sizeof(digit));
    P(type_name, offsetof(PyTypeObject, tp_name));
    P(type_basicsize, offsetof(PyTypeObject, tp_basicsize));
    P(type_dictoffset, offsetof(PyTypeObject, tp_dictoffset));
    P(type_flags, offsetof(PyTypeObject, tp_flags));
    P(type_cached_keys, offsetof(PyHeapTypeObject, ht_cached_keys));
#ifdef Py_TPFLAGS_MANAGED_DICT
    P(tpflag_managed_dict, Py_TPFLAGS_MANAGED_DICT);
#else
    P(tpflag_managed_dict, 0);
#endif
#ifdef Py_TPFLAGS_INLINE_VALUES
    P(tpflag_inline_values, Py_TPFLAGS_INLINE_VALUES);
#else
    P(tpflag_inline_values, 0);
#endif
    P(module_dict, offsetof(PyModuleObject, md_dict));

    /* dicts */
    P(dict_used, offsetof(PyDictObject, ma_used));
    P(dict_keys, offsetof(PyDictObject, ma_keys));
    P(dict_values, offsetof(PyDictObject, ma_values));
#if PY_VERSION_HEX >= 0x030b0000
    NONE(keys_size);
    P(keys_log2_size, offsetof(PyDictKeysObject, dk_log2_size));
    P(keys_log2_index_bytes, offsetof(PyDictKeysObject, dk_log2_index_bytes));
    P(keys_kind, offsetof(PyDictKeysObject, dk_kind));
    P(keys_nentries, offsetof(PyDictKeysObject, dk_nentries));
    P(keys_indices, offsetof(PyDictKeysObject, dk_indices));
    P(keys_entry_size, sizeof(PyDictKeyEntry));
    P(keys_unicode_entry_size, sizeof(PyDictUnicodeEntry));
    P(keys_kind_general, DICT_KEYS_GENERAL);
# if PY_VERSION_HEX >= 0x030d0000
    P(values_array, offsetof(PyDictValues, values));
    P(values_valid, offsetof(PyDictValues, valid));
# else
    P(values_array, 0);
    NONE(values_valid);
# endif
# ifdef MANAGED_DICT_OFFSET
    P(managed_dict, MANAGED_DICT_OFFSET);
# else
    P(managed_dict, -3 * (long long)sizeof(PyObject *));
# endif
#else
    KEYS_310
    NONE(managed_dict);
#endif

#if PY_VERSION_HEX >= 0x030d0000
    P(dbg_size, sizeof(_Py_DebugOffsets));
    DBG_FIELDS
#else
    NONE(dbg_size);
#endif
    return 0;
}
'''

# CPython 3.10 kept struct _dictkeysobject in Objects/dict-common.h, which is
# not installed: its layout there (dk_refcnt, dk_size, dk_lookup, dk_usable,
# dk_nentries, dk_indices[]; entries of hash, key, value), in probe terms.
KEYS_310 = r'''
    P(keys_size, sizeof(Py_ssize_t));
    NONE(keys_log2_size);
    NONE(keys_log2_index_bytes);
    NONE(keys_kind);
    P(keys_nentries, 4 * sizeof(Py_ssize_t));
    P(keys_indices, 5 * sizeof(Py_ssize_t));
    P(keys_entry_size, sizeof(Py_hash_t) + 2 * sizeof(PyObject *));
    NONE(keys_unicode_entry_size);
    NONE(keys_kind_general);
    P(values_array, 0);
    NONE(values_valid);
'''

# Our field -> its place in _Py_DebugOffsets (3.13+): the reader takes the
# running interpreter's own value for each, and says when the table differs.
DBG = [
    ("runtime_interpreters_head", "runtime_state.interpreters_head"),
    ("interp_next", "interpreter_state.next"),
    ("interp_threads_head", "interpreter_state.threads_head"),
    ("interp_modules", "interpreter_state.imports_modules"),
    ("tstate_next", "thread_state.next"),
    ("tstate_interp", "thread_state.interp"),
    ("tstate_frame", "thread_state.current_frame"),
    ("tstate_thread_id", "thread_state.thread_id"),
    ("tstate_native_thread_id", "thread_state.native_thread_id"),
    ("frame_previous", "interpreter_frame.previous"),
    ("frame_code", "interpreter_frame.executable"),
    ("frame_instr", "interpreter_frame.instr_ptr"),
    ("frame_owner", "interpreter_frame.owner"),
    ("code_filename", "code_object.filename"),
    ("code_name", "code_object.name"),
    ("code_qualname", "code_object.qualname"),
    ("code_linetable", "code_object.linetable"),
    ("code_firstlineno", "code_object.firstlineno"),
    ("code_adaptive", "code_object.co_code_adaptive"),
    ("object_type", "pyobject.ob_type"),
    ("type_flags", "type_object.tp_flags"),
    ("dict_keys", "dict_object.ma_keys"),
    ("dict_values", "dict_object.ma_values"),
    ("long_tag", "long_object.lv_tag"),
    ("long_digits", "long_object.ob_digit"),
    ("bytes_data", "bytes_object.ob_sval"),
    ("unicode_state", "unicode_object.state"),
    ("unicode_length", "unicode_object.length"),
    ("unicode_ascii_size", "unicode_object.asciiobject_size"),
]


def probe_source():
    dbg = "".join('    printf("dbg %%s %%lld\\n", "%s", (long long)offsetof(_Py_DebugOffsets, %s));\n'
                  % (ours, theirs) for ours, theirs in DBG)
    return PROBE.replace("KEYS_310", KEYS_310).replace("DBG_FIELDS", dbg)


def include_dirs(prefix, minor):
    """The include directories of the Python under prefix (None if absent)."""
    inc = os.path.join(prefix, "include", "python3.%d" % minor)
    if not os.path.isfile(os.path.join(inc, "internal", "pycore_runtime.h")):
        return None
    dirs = [inc]
    # Debian keeps pyconfig.h per architecture
    multiarch = glob.glob(os.path.join(prefix, "include", "*-linux-gnu", "python3.%d" % minor))
    return dirs + multiarch


def measure(prefix, minor, cc):
    """Compile and run the probe against one installation: dict of values."""
    dirs = include_dirs(prefix, minor)
    if not dirs:
        return None
    with tempfile.TemporaryDirectory(prefix="pyoffsets-") as tmp:
        src = os.path.join(tmp, "probe.c")
        exe = os.path.join(tmp, "probe")
        with open(src, "w") as f:
            f.write(probe_source())
        cmd = [cc, "-std=gnu11", "-w", "-o", exe, src] + ["-I" + d for d in dirs]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode:
            raise SystemExit("cannot compile the probe against %s:\n%s" % (dirs[0], p.stderr[-3000:]))
        out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    values, dbg = {}, {}
    for line in out.splitlines():
        parts = line.split()
        if parts[0] == "version":
            values["version"] = tuple(int(x) for x in parts[1:])
        elif parts[0] == "dbg":
            dbg[parts[1]] = int(parts[2])
        else:
            values[parts[0]] = int(parts[1])
    values["dbg"] = dbg
    if values["version"][:2] != (3, minor):
        raise SystemExit("%s: headers say %s, not 3.%d" % (dirs[0], values["version"], minor))
    return values


def render_entry(v):
    major, minor, micro = v["version"]
    lines = ["\t{", "\t\t.major = %d, .minor = %d, .measured = \"%d.%d.%d\"," % (major, minor, major, minor, micro)]
    for key, val in v.items():
        if key in ("version", "dbg"):
            continue
        lines.append("\t\t.%s = %d," % (key, val))
    if v["dbg"]:
        lines.append("\t\t.ndbg = %d," % len(v["dbg"]))
        lines.append("\t\t.dbg = {")
        for ours, pos in v["dbg"].items():
            lines.append("\t\t\t{ offsetof(struct pyrt_offsets, %s), %d }," % (ours, pos))
        lines.append("\t\t},")
    lines.append("\t},")
    return "\n".join(lines)


def strip_measured(text):
    """A newer micro release with the same layout matches the table too."""
    return re.sub(r', \.measured = "[^"]*"', "", text)


def render(entries):
    head = ("// SPDX-License-Identifier: GPL-2.0\n"
            "/*\n"
            " * GENERATED by scripts/gen-pyoffsets.py from each version's own headers:\n"
            " * do not edit. tests/test_pyrt.py checks it against every installed CPython.\n"
            " */\n"
            "#include <stddef.h>\n"
            "#include \"pyrt_layouts.h\"\n\n"
            "const struct pyrt_offsets pyrt_layouts[] = {\n")
    body = "\n".join(render_entry(e) for e in entries)
    return head + body + "\n};\n\nconst int pyrt_nlayouts = sizeof(pyrt_layouts) / sizeof(pyrt_layouts[0]);\n"


def pyenv_prefixes():
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    except OSError:
        root = os.path.expanduser("~/.pyenv")
    found = []
    for d in glob.glob(os.path.join(root or os.path.expanduser("~/.pyenv"), "versions", "*")):
        m = re.match(r"^(\d+)\.(\d+)\.(\d+)$", os.path.basename(d))
        if m and (int(m.group(1)), int(m.group(2))) >= OLDEST:
            found.append(((int(m.group(1)), int(m.group(2)), int(m.group(3))), d))
    return sorted(found)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--prefix", action="append", default=[])
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    args = ap.parse_args()

    installs = [(v, d) for v, d in pyenv_prefixes()]
    for d in args.prefix:
        for inc in glob.glob(os.path.join(d, "include", "python3.*")):
            m = re.match(r"python3\.(\d+)$", os.path.basename(inc))
            if m:
                installs.append(((3, int(m.group(1)), -1), d))
    if not args.prefix and os.path.isdir("/usr/include"):
        for inc in glob.glob("/usr/include/python3.*"):
            m = re.match(r"python3\.(\d+)$", os.path.basename(inc))
            if m and (3, int(m.group(1))) >= OLDEST:
                installs.append(((3, int(m.group(1)), -1), "/usr"))

    newest = {}     # minor -> values of the newest pyenv build
    others = []     # every other installation: checked against its minor
    for ver, prefix in installs:
        values = measure(prefix, ver[1], args.cc)
        if values is None:
            continue
        cur = newest.get(ver[1])
        if cur is None or values["version"] > cur["version"]:
            if cur is not None:
                others.append(cur)
            newest[ver[1]] = values
        else:
            others.append(values)
    if not newest:
        print("no CPython >= 3.%d with internal headers found" % OLDEST[1], file=sys.stderr)
        return 2
    text = render([newest[m] for m in sorted(newest)])

    bad = 0
    for o in others:
        ref = newest[o["version"][1]]
        diff = [k for k in ref if k != "version" and ref[k] != o.get(k)]
        if diff:
            bad += 1
            print("%d.%d.%d differs from %d.%d.%d in: %s" % (o["version"] + ref["version"] +
                                                           (", ".join(diff),)))
        else:
            print("%d.%d.%d: same layout as %d.%d.%d" % (o["version"] + ref["version"]))
    if args.check:
        try:
            with open(args.out) as f:
                committed = f.read()
        except OSError as e:
            print("cannot read %s: %s" % (args.out, e))
            return 1
        committed = strip_measured(committed)
        for m in sorted(newest):
            v = newest[m]["version"]
            if strip_measured(render_entry(newest[m])) in committed:
                print("%d.%d.%d: matches the committed table" % v)
            else:
                bad += 1
                print("%d.%d.%d: the committed table differs (run %s)" % (v + (sys.argv[0],)))
        return 1 if bad else 0
    with open(args.out, "w") as f:
        f.write(text)
    print("wrote %s: %s" % (args.out, ", ".join("%d.%d.%d" % newest[m]["version"] for m in sorted(newest))))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
