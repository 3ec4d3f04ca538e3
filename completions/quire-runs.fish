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
complete -c quire-runs -n "__fish_quire_runs_needs_command" -s h -l help -d 'Print help'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "list" -d 'List runs, newest first'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "show" -d 'Show a run with its jobs and steps'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "reconcile" -d 'Fail runs whose worker is gone (safe to run from cron at any moment)'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "completions" -d 'Print a completion script for a shell'
complete -c quire-runs -n "__fish_quire_runs_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -l repo -d 'Only runs of this repository (as listed in the REPO column)' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -l ref -d 'Only runs of this ref: `refs/heads/main`, or `main` for a branch or tag' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -l state -d 'Only runs in this state (repeatable)' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -l limit -d 'At most this many runs' -r
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -l json -d 'Print a JSON array of run objects (docs/CLI.md)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -s h -l help -d 'Print help'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand list" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand show" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand show" -l json -d 'Print the run as a JSON object with its jobs and steps (docs/CLI.md)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand show" -s h -l help -d 'Print help'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand show" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand reconcile" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand reconcile" -l dry-run -d 'Report what would change, change nothing'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand reconcile" -l json -d 'Print the report as JSON (docs/CLI.md)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand reconcile" -s h -l help -d 'Print help'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand reconcile" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand completions" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-runs -n "__fish_quire_runs_using_subcommand completions" -s h -l help -d 'Print help'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand completions" -s V -l version -d 'Print version'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show reconcile completions help" -f -a "list" -d 'List runs, newest first'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show reconcile completions help" -f -a "show" -d 'Show a run with its jobs and steps'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show reconcile completions help" -f -a "reconcile" -d 'Fail runs whose worker is gone (safe to run from cron at any moment)'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show reconcile completions help" -f -a "completions" -d 'Print a completion script for a shell'
complete -c quire-runs -n "__fish_quire_runs_using_subcommand help; and not __fish_seen_subcommand_from list show reconcile completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
