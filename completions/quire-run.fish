# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_quire_run_global_optspecs
    string join \n home= h/help V/version
end

function __fish_quire_run_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_quire_run_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_quire_run_using_subcommand
    set -l cmd (__fish_quire_run_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c quire-run -n "__fish_quire_run_needs_command" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-run -n "__fish_quire_run_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-run -n "__fish_quire_run_needs_command" -s V -l version -d 'Print version'
complete -c quire-run -n "__fish_quire_run_needs_command" -f -a "hook" -d 'git\'s post-receive hook: read `<old> <new> <ref>` lines on stdin, record a run per ref, start a worker, return at once (with the push option ci.wait: once the runs have ended, telling the pusher each job\'s start and end)'
complete -c quire-run -n "__fish_quire_run_needs_command" -f -a "pre-receive" -d 'The pre-receive hook of earlier installs: refuse a push that writes refs/notes/ci (quire\'s notes), accept every other'
complete -c quire-run -n "__fish_quire_run_needs_command" -f -a "trigger" -d 'Record a run for one ref of a bare repository, as a push would'
complete -c quire-run -n "__fish_quire_run_needs_command" -f -a "work" -d 'Execute pending runs until none is left, then exit'
complete -c quire-run -n "__fish_quire_run_needs_command" -f -a "announce" -d 'Write the git note and run the `[[notify]]` commands of every run that ended and was not announced yet, then exit (started by whoever ends runs; safe to run by hand or from cron)'
complete -c quire-run -n "__fish_quire_run_needs_command" -f -a "install" -d 'Install quire\'s post-receive hook into bare repositories, keeping a hook that was there (it runs first), and keep pushes off refs/notes/ci'
complete -c quire-run -n "__fish_quire_run_needs_command" -f -a "migrate-from" -d 'Take an upstream quire home (its quire.db at any version, its run logs, its repos/) into this home, which must not have a store yet; the source is only read'
complete -c quire-run -n "__fish_quire_run_needs_command" -f -a "validate" -d 'Check a pipeline file; print the jobs in the order they would run, or every error with its line and column (exit 1)'
complete -c quire-run -n "__fish_quire_run_needs_command" -f -a "exec" -d 'Run a pipeline in a local directory, without a repository or a store; exit 0 iff every job that had to pass passed'
complete -c quire-run -n "__fish_quire_run_needs_command" -f -a "node" -d 'One job of a run on a cluster\'s node (started by the worker through the cluster\'s scheduler, e.g. Slurm\'s srun; not for people)'
complete -c quire-run -n "__fish_quire_run_needs_command" -f -a "demo" -d 'Try quire end to end in a scratch directory: a bare repository with the hook installed, a real `git push` of a project with a pipeline, the run it executes'
complete -c quire-run -n "__fish_quire_run_needs_command" -f -a "completions" -d 'Print a completion script for a shell'
complete -c quire-run -n "__fish_quire_run_needs_command" -f -a "man" -d 'Print the manual page (roff) of quire-run or of one of its commands, or write them all into a folder'
complete -c quire-run -n "__fish_quire_run_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c quire-run -n "__fish_quire_run_using_subcommand hook" -l git-dir -d 'The bare repository [default: $GIT_DIR]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand hook" -l previous-hook -d 'The post-receive hook that was there before quire\'s: run first, with the same input (`install` passes it); a missing one is skipped' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand hook" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand hook" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-run -n "__fish_quire_run_using_subcommand hook" -s V -l version -d 'Print version'
complete -c quire-run -n "__fish_quire_run_using_subcommand pre-receive" -l previous-hook -d 'The pre-receive hook that was there before quire\'s: run first, with the same input (`install` passes it); its refusal refuses the push; a missing one is skipped' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand pre-receive" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand pre-receive" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-run -n "__fish_quire_run_using_subcommand pre-receive" -s V -l version -d 'Print version'
complete -c quire-run -n "__fish_quire_run_using_subcommand trigger" -l git-dir -d 'The bare repository' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand trigger" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand trigger" -l wait -d 'Run the pipeline here and now, print the outcome, and exit 0 iff the run completed'
complete -c quire-run -n "__fish_quire_run_using_subcommand trigger" -l force -d 'Record a run even when the commit\'s message says `[skip ci]`'
complete -c quire-run -n "__fish_quire_run_using_subcommand trigger" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-run -n "__fish_quire_run_using_subcommand trigger" -s V -l version -d 'Print version'
complete -c quire-run -n "__fish_quire_run_using_subcommand work" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand work" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-run -n "__fish_quire_run_using_subcommand work" -s V -l version -d 'Print version'
complete -c quire-run -n "__fish_quire_run_using_subcommand announce" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand announce" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-run -n "__fish_quire_run_using_subcommand announce" -s V -l version -d 'Print version'
complete -c quire-run -n "__fish_quire_run_using_subcommand install" -l all -d 'Also every bare repository under ROOT, found by walking it (repeatable)' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand install" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand install" -l force -d 'Point quire\'s hook for another home at this one (another program\'s hook is never replaced: it is kept and run first)'
complete -c quire-run -n "__fish_quire_run_using_subcommand install" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-run -n "__fish_quire_run_using_subcommand install" -s V -l version -d 'Print version'
complete -c quire-run -n "__fish_quire_run_using_subcommand migrate-from" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand migrate-from" -l install-hooks -d 'Install quire\'s post-receive hook into every repository under DIR/repos (upstream\'s hook is kept as hooks/post-receive.upstream)'
complete -c quire-run -n "__fish_quire_run_using_subcommand migrate-from" -l force -d 'Take a snapshot even while an upstream process has quire.db open'
complete -c quire-run -n "__fish_quire_run_using_subcommand migrate-from" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-run -n "__fish_quire_run_using_subcommand migrate-from" -s V -l version -d 'Print version'
complete -c quire-run -n "__fish_quire_run_using_subcommand validate" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand validate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-run -n "__fish_quire_run_using_subcommand validate" -s V -l version -d 'Print version'
complete -c quire-run -n "__fish_quire_run_using_subcommand exec" -l workspace -d 'The directory steps run in [default: the current directory]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand exec" -l ref -d 'The ref the run pretends was pushed (for `when`) [default: the workspace\'s current branch, else main]' -r
complete -c quire-run -n "__fish_quire_run_using_subcommand exec" -l logs -d 'Where logs and events.jsonl go [default: a new directory under $TMPDIR]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand exec" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand exec" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-run -n "__fish_quire_run_using_subcommand exec" -s V -l version -d 'Print version'
complete -c quire-run -n "__fish_quire_run_using_subcommand node" -l scratch -d 'Where workspaces go [default: $TMPDIR, else /tmp]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand node" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand node" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-run -n "__fish_quire_run_using_subcommand node" -s V -l version -d 'Print version'
complete -c quire-run -n "__fish_quire_run_using_subcommand demo" -l dir -d 'Where to create the repositories (and the home, unless --home is given); kept at the end [default: a new directory under $TMPDIR, removed at the end]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand demo" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand demo" -l keep -d 'Keep the scratch directory at the end, to look further'
complete -c quire-run -n "__fish_quire_run_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-run -n "__fish_quire_run_using_subcommand demo" -s V -l version -d 'Print version'
complete -c quire-run -n "__fish_quire_run_using_subcommand completions" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-run -n "__fish_quire_run_using_subcommand completions" -s V -l version -d 'Print version'
complete -c quire-run -n "__fish_quire_run_using_subcommand man" -l dir -d 'Write every page (the binary\'s and one per command, NAME.1) into DIR instead, e.g. /usr/local/share/man/man1' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand man" -l home -d 'quire\'s data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or ~/.local/share/quire]' -r -F
complete -c quire-run -n "__fish_quire_run_using_subcommand man" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c quire-run -n "__fish_quire_run_using_subcommand man" -s V -l version -d 'Print version'
complete -c quire-run -n "__fish_quire_run_using_subcommand help; and not __fish_seen_subcommand_from hook pre-receive trigger work announce install migrate-from validate exec node demo completions man help" -f -a "hook" -d 'git\'s post-receive hook: read `<old> <new> <ref>` lines on stdin, record a run per ref, start a worker, return at once (with the push option ci.wait: once the runs have ended, telling the pusher each job\'s start and end)'
complete -c quire-run -n "__fish_quire_run_using_subcommand help; and not __fish_seen_subcommand_from hook pre-receive trigger work announce install migrate-from validate exec node demo completions man help" -f -a "pre-receive" -d 'The pre-receive hook of earlier installs: refuse a push that writes refs/notes/ci (quire\'s notes), accept every other'
complete -c quire-run -n "__fish_quire_run_using_subcommand help; and not __fish_seen_subcommand_from hook pre-receive trigger work announce install migrate-from validate exec node demo completions man help" -f -a "trigger" -d 'Record a run for one ref of a bare repository, as a push would'
complete -c quire-run -n "__fish_quire_run_using_subcommand help; and not __fish_seen_subcommand_from hook pre-receive trigger work announce install migrate-from validate exec node demo completions man help" -f -a "work" -d 'Execute pending runs until none is left, then exit'
complete -c quire-run -n "__fish_quire_run_using_subcommand help; and not __fish_seen_subcommand_from hook pre-receive trigger work announce install migrate-from validate exec node demo completions man help" -f -a "announce" -d 'Write the git note and run the `[[notify]]` commands of every run that ended and was not announced yet, then exit (started by whoever ends runs; safe to run by hand or from cron)'
complete -c quire-run -n "__fish_quire_run_using_subcommand help; and not __fish_seen_subcommand_from hook pre-receive trigger work announce install migrate-from validate exec node demo completions man help" -f -a "install" -d 'Install quire\'s post-receive hook into bare repositories, keeping a hook that was there (it runs first), and keep pushes off refs/notes/ci'
complete -c quire-run -n "__fish_quire_run_using_subcommand help; and not __fish_seen_subcommand_from hook pre-receive trigger work announce install migrate-from validate exec node demo completions man help" -f -a "migrate-from" -d 'Take an upstream quire home (its quire.db at any version, its run logs, its repos/) into this home, which must not have a store yet; the source is only read'
complete -c quire-run -n "__fish_quire_run_using_subcommand help; and not __fish_seen_subcommand_from hook pre-receive trigger work announce install migrate-from validate exec node demo completions man help" -f -a "validate" -d 'Check a pipeline file; print the jobs in the order they would run, or every error with its line and column (exit 1)'
complete -c quire-run -n "__fish_quire_run_using_subcommand help; and not __fish_seen_subcommand_from hook pre-receive trigger work announce install migrate-from validate exec node demo completions man help" -f -a "exec" -d 'Run a pipeline in a local directory, without a repository or a store; exit 0 iff every job that had to pass passed'
complete -c quire-run -n "__fish_quire_run_using_subcommand help; and not __fish_seen_subcommand_from hook pre-receive trigger work announce install migrate-from validate exec node demo completions man help" -f -a "node" -d 'One job of a run on a cluster\'s node (started by the worker through the cluster\'s scheduler, e.g. Slurm\'s srun; not for people)'
complete -c quire-run -n "__fish_quire_run_using_subcommand help; and not __fish_seen_subcommand_from hook pre-receive trigger work announce install migrate-from validate exec node demo completions man help" -f -a "demo" -d 'Try quire end to end in a scratch directory: a bare repository with the hook installed, a real `git push` of a project with a pipeline, the run it executes'
complete -c quire-run -n "__fish_quire_run_using_subcommand help; and not __fish_seen_subcommand_from hook pre-receive trigger work announce install migrate-from validate exec node demo completions man help" -f -a "completions" -d 'Print a completion script for a shell'
complete -c quire-run -n "__fish_quire_run_using_subcommand help; and not __fish_seen_subcommand_from hook pre-receive trigger work announce install migrate-from validate exec node demo completions man help" -f -a "man" -d 'Print the manual page (roff) of quire-run or of one of its commands, or write them all into a folder'
complete -c quire-run -n "__fish_quire_run_using_subcommand help; and not __fish_seen_subcommand_from hook pre-receive trigger work announce install migrate-from validate exec node demo completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c quire-run -n "__fish_quire_run_using_subcommand completions" -f -a "bash elvish fish powershell zsh"
