# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_quire_runs_global_optspecs
    string join \n home= h/help V/version
end

function __fish_quire_runs_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_quire_runs_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_quire_runs_using_subcommand
    set -l cmd (__fish_quire_runs_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c quire-runs -n "__fish_quire_runs_needs_command" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "list" -d 'List runs, newest first'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "show" -d 'Show a run with its jobs and steps (without RUN: the newest run)'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "logs" -d 'Print a run\'s step output (without RUN: the newest run\'s)'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "watch" -d 'Follow a run\'s jobs until it ends (without RUN: the newest run)'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "download" -d 'Write the files a run\'s jobs kept (artifacts) to a directory'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "wait" -d 'Block until a run ends (without RUN: the newest run); exit 0 iff it completed'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "cancel" -d 'Cancel a pending or active run (it fails as `cancelled`)'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "retry" -d 'Queue a new run of the same repository, ref and commit'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "prune" -d 'Delete old finished runs and their files; trim caches to cache_max_mb'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "reconcile" -d 'Fail runs whose worker is gone, end their leftover steps, start a worker for pending runs (safe to run from cron at any moment)'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "repos" -d 'List the repositories quire knows, and whether git runs quire\'s hook'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "caches" -d 'List the jobs\' caches kept between runs'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "serve" -d 'Serve the runs read-only as web pages, live logs, status badges and a JSON API'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "completions" -d 'Print a completion script for a shell'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "complete-words" -d 'Words only the home knows, for the completion scripts (not for people)'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "man" -d 'Print the manual page (roff) of quire-runs or of one of its commands, or write them all into a folder'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -s R -l repo -d 'Runs of this repository: its name (as `quire-runs repos` lists it), with or without `.git`, or the path to its git directory' -r -f -k -a "(__fish_quire_runs_words repos)"
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -l ref -d 'Runs of this ref: `refs/heads/main`, a branch or tag name (`main`, `v1.0`), or a glob of either (`release/*`, `refs/tags/v1.*`)' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -s b -l branch -d 'Runs of this branch (`main`, or a glob: `release/*`); tags never match' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -s s -l state -d 'Only runs in this state (repeatable)' -r -f -a "pending\t''
active\t''
complete\t''
failed\t''
superseded\t''"
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -s c -l commit -d 'Only runs of commits whose id starts with this (`--sha` is the same)' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -l since -d 'Only runs queued within this span ("2h", "3d")' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -s L -l limit -d 'At most this many runs (at least 1)' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -l json -d 'Print JSON; with FIELDS (`id,state,ref`), only those fields of each object (an unknown field is refused, naming the fields there are)' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -s q -l jq -d 'Filter the JSON through this jq program and print each result, strings raw (as `jq -r`); implies --json' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand show" -s R -l repo -d 'Runs of this repository: its name (as `quire-runs repos` lists it), with or without `.git`, or the path to its git directory' -r -f -k -a "(__fish_quire_runs_words repos)"
complete -c quire-runs -n "__fish_quire_runs_using_subcommand show" -l ref -d 'Runs of this ref: `refs/heads/main`, a branch or tag name (`main`, `v1.0`), or a glob of either (`release/*`, `refs/tags/v1.*`)' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand show" -s b -l branch -d 'Runs of this branch (`main`, or a glob: `release/*`); tags never match' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand show" -l json -d 'Print JSON; with FIELDS (`id,state,ref`), only those fields of each object (an unknown field is refused, naming the fields there are)' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand show" -s q -l jq -d 'Filter the JSON through this jq program and print each result, strings raw (as `jq -r`); implies --json' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand show" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand show" -l exit-status -d 'Exit 0 iff the run completed, 1 otherwise (as `wait`, without waiting)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand show" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand logs" -s j -l job -d 'Only this job (as JOB; also without RUN)' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand logs" -s R -l repo -d 'Runs of this repository: its name (as `quire-runs repos` lists it), with or without `.git`, or the path to its git directory' -r -f -k -a "(__fish_quire_runs_words repos)"
complete -c quire-runs -n "__fish_quire_runs_using_subcommand logs" -l ref -d 'Runs of this ref: `refs/heads/main`, a branch or tag name (`main`, `v1.0`), or a glob of either (`release/*`, `refs/tags/v1.*`)' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand logs" -s b -l branch -d 'Runs of this branch (`main`, or a glob: `release/*`); tags never match' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand logs" -l step -d 'Only this step of the job (1, 2, ...)' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand logs" -l stream -d 'Only this stream' -r -f -a "stdout\t''
stderr\t''"
complete -c quire-runs -n "__fish_quire_runs_using_subcommand logs" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand logs" -s f -l follow -d 'Keep printing as the run writes, until it ends; exit 0 iff it completed'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand logs" -s t -l timestamps -d 'Start each line with the time it was read'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand logs" -l failed -d 'Only the logs of the steps that failed (the step that ended each failed job)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand logs" -l raw -d 'Print the output as the steps wrote it, escape sequences and all (by default, control characters other than colours are escaped, so a log cannot clear the screen or retitle the terminal)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand logs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand logs" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand watch" -s R -l repo -d 'Runs of this repository: its name (as `quire-runs repos` lists it), with or without `.git`, or the path to its git directory' -r -f -k -a "(__fish_quire_runs_words repos)"
complete -c quire-runs -n "__fish_quire_runs_using_subcommand watch" -l ref -d 'Runs of this ref: `refs/heads/main`, a branch or tag name (`main`, `v1.0`), or a glob of either (`release/*`, `refs/tags/v1.*`)' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand watch" -s b -l branch -d 'Runs of this branch (`main`, or a glob: `release/*`); tags never match' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand watch" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand watch" -l exit-status -d 'Exit 0 iff the run completed, 1 otherwise (as `show --exit-status`)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand watch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand watch" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand download" -l job -d 'Only this job\'s artifacts' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand download" -l dir -d 'Write them here, as DIR/JOB/PATH (an existing file is never overwritten)' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand download" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand download" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand download" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand wait" -s R -l repo -d 'Runs of this repository: its name (as `quire-runs repos` lists it), with or without `.git`, or the path to its git directory' -r -f -k -a "(__fish_quire_runs_words repos)"
complete -c quire-runs -n "__fish_quire_runs_using_subcommand wait" -l ref -d 'Runs of this ref: `refs/heads/main`, a branch or tag name (`main`, `v1.0`), or a glob of either (`release/*`, `refs/tags/v1.*`)' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand wait" -s b -l branch -d 'Runs of this branch (`main`, or a glob: `release/*`); tags never match' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand wait" -s i -l interval -d 'How often to look' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand wait" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand wait" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand wait" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand cancel" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand cancel" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand cancel" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand retry" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand retry" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand retry" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand prune" -l older-than -d 'Delete finished runs that ended longer ago than this ("30d", "12h") [default: retention.older_than in config.toml]' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand prune" -l keep -d 'Always keep this many newest finished runs of each (repo, ref) [default: retention.keep in config.toml, else 0]' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand prune" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand prune" -l dry-run -d 'Say what would go, delete nothing'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand prune" -l json -d 'Print the report as JSON (runs, bytes_freed, caches, cache_bytes_freed, cache_leftovers, dry_run)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand prune" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand prune" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand reconcile" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand reconcile" -l dry-run -d 'Report what would change, change nothing'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand reconcile" -l json -d 'Print the report as JSON (orphaned, live, awaiting_worker, leftovers, logs_packed, worker_started, cluster_jobs_ended, dry_run)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand reconcile" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand reconcile" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand repos" -l json -d 'Print JSON; with FIELDS (`id,state,ref`), only those fields of each object (an unknown field is refused, naming the fields there are)' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand repos" -s q -l jq -d 'Filter the JSON through this jq program and print each result, strings raw (as `jq -r`); implies --json' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand repos" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand repos" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand repos" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand caches" -l json -d 'Print JSON; with FIELDS (`id,state,ref`), only those fields of each object (an unknown field is refused, naming the fields there are)' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand caches" -s q -l jq -d 'Filter the JSON through this jq program and print each result, strings raw (as `jq -r`); implies --json' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand caches" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand caches" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand caches" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand serve" -l listen -d 'Listen on this address (IP:PORT; port 0 takes a free one). Any but a loopback address shows every run to whoever reaches it: put a reverse proxy with authentication in front' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand serve" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand serve" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand completions" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand completions" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand complete-words" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand complete-words" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand complete-words" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand man" -l dir -d 'Write every page (the binary\'s and one per command, NAME.1) into DIR instead, e.g. /usr/local/share/man/man1' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand man" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand man" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand man" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "list" -d 'List runs, newest first'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "show" -d 'Show a run with its jobs and steps (without RUN: the newest run)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "logs" -d 'Print a run\'s step output (without RUN: the newest run\'s)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "watch" -d 'Follow a run\'s jobs until it ends (without RUN: the newest run)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "download" -d 'Write the files a run\'s jobs kept (artifacts) to a directory'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "wait" -d 'Block until a run ends (without RUN: the newest run); exit 0 iff it completed'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "cancel" -d 'Cancel a pending or active run (it fails as `cancelled`)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "retry" -d 'Queue a new run of the same repository, ref and commit'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "prune" -d 'Delete old finished runs and their files; trim caches to cache_max_mb'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "reconcile" -d 'Fail runs whose worker is gone, end their leftover steps, start a worker for pending runs (safe to run from cron at any moment)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "repos" -d 'List the repositories quire knows, and whether git runs quire\'s hook'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "caches" -d 'List the jobs\' caches kept between runs'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "serve" -d 'Serve the runs read-only as web pages, live logs, status badges and a JSON API'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "completions" -d 'Print a completion script for a shell'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "complete-words" -d 'Words only the home knows, for the completion scripts (not for people)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "man" -d 'Print the manual page (roff) of quire-runs or of one of its commands, or write them all into a folder'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show logs watch download wait cancel retry prune reconcile repos caches serve completions complete-words man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand completions" -f -a "bash elvish fish powershell zsh"
complete -c quire-runs -n "__fish_quire_runs_using_subcommand complete-words" -f -a "runs repos"

# The words only the home knows, from quire-runs itself (complete-words KIND),
# for the --home on the line (else its default home).
function __fish_quire_runs_words
    set -l tokens (commandline -opc)
    set -l home
    for i in (seq (count $tokens))
        switch $tokens[$i]
            case --home
                set -l next (math $i + 1)
                set -q tokens[$next]; and set home --home $tokens[$next]
            case '--home=*'
                set home --home (string replace -- --home= '' $tokens[$i])
        end
    end
    command $tokens[1] $home complete-words $argv 2>/dev/null
end
complete -c quire-runs -n "__fish_quire_runs_using_subcommand show" -f -k -a "(__fish_quire_runs_words runs)"
complete -c quire-runs -n "__fish_quire_runs_using_subcommand logs" -f -k -a "(__fish_quire_runs_words runs)"
complete -c quire-runs -n "__fish_quire_runs_using_subcommand watch" -f -k -a "(__fish_quire_runs_words runs)"
complete -c quire-runs -n "__fish_quire_runs_using_subcommand download" -f -k -a "(__fish_quire_runs_words runs)"
complete -c quire-runs -n "__fish_quire_runs_using_subcommand wait" -f -k -a "(__fish_quire_runs_words runs)"
complete -c quire-runs -n "__fish_quire_runs_using_subcommand cancel" -f -k -a "(__fish_quire_runs_words runs)"
complete -c quire-runs -n "__fish_quire_runs_using_subcommand retry" -f -k -a "(__fish_quire_runs_words runs)"
