# bash completion for forkhazard(8)                       -*- shell-script -*-

_forkhazard()
{
	local cur prev words cword split
	_init_completion -s || return

	case $prev in
	-p | --pid)
		_pids
		return
		;;
	-o | --output | --config | --log-file | --metrics-file | --suppressions | --sarif)
		_filedir
		return
		;;
	--sarif-root)
		_filedir -d
		return
		;;
	--fail-on)
		COMPREPLY=($(compgen -W 'none hazard deadlock' -- "$cur"))
		return
		;;
	--mode)
		COMPREPLY=($(compgen -W 'adaptive all light' -- "$cur"))
		return
		;;
	--lock-stack)
		COMPREPLY=($(compgen -W 'caller fp full' -- "$cur"))
		return
		;;
	--comm | --filter-comm)
		COMPREPLY=($(compgen -W '$(ps -e -o comm= 2>/dev/null | sort -u)' -- "$cur"))
		return
		;;
	--filter-exe | --lock-fn)
		_filedir
		return
		;;
	-u | --user)
		COMPREPLY=($(compgen -u -- "$cur"))
		return
		;;
	--metrics-listen)
		COMPREPLY=($(compgen -W '127.0.0.1:9477 [::1]:9477' -- "$cur"))
		return
		;;
	-d | --duration | --stack-depth | --max-procs | --max-overhead | --hold-ms | --ring-buffer-kb | \
	--max-children | --max-traced | --metrics-interval | --report-interval | \
	--max-sites | --metrics-sites | --rate-limit | --site-rate-limit | --filter-cgroup | \
	--fail-exit-code | --site | --top)
		return
		;;
	esac
	$split && return

	# after --: the command and its own arguments
	local i
	for ((i = 1; i < cword; i++)); do
		if [[ ${words[i]} == -- ]]; then
			_command_offset $((i + 1))
			return
		fi
	done
	if [[ $cword -eq 1 && $cur != -* ]]; then
		COMPREPLY=($(compgen -W 'inspect calibrate report' -- "$cur"))
		return
	fi
	if [[ ${words[1]} == calibrate ]]; then
		COMPREPLY=($(compgen -W '--json --help' -- "$cur"))
		return
	fi
	if [[ ${words[1]} == report ]]; then
		[[ $cur == -* ]] && COMPREPLY=($(compgen -W '--json --markdown --site --top
			--max-sites --help' -- "$cur")) || _filedir
		return
	fi
	if [[ ${words[1]} == inspect ]]; then
		[[ $cur == -* ]] && COMPREPLY=($(compgen -W '--json --verbose --help' -- "$cur")) ||
			_pids
		return
	fi
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W '$(_parse_help "$1")' -- "$cur"))
		[[ ${COMPREPLY-} == *= ]] && compopt -o nospace
	fi
} &&
	complete -F _forkhazard forkhazard

# ex: filetype=sh
