//! What `quire-runs --help` and its manual pages say beyond the options:
//! what each command does, its exit statuses, examples (`manual.rs`
//! renders them). Keep it true to docs/CLI.md.

use crate::manual::{Manual, Page};

pub(crate) static MANUAL: Manual = Manual {
    pages: PAGES,
    environment: ENVIRONMENT,
    see_also: &["git-push(1)", "crontab(5)", "sqlite3(1)"],
};

/// The variables quire-runs reads.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("QUIRE_HOME", "The home, when --home is not given."),
    (
        "XDG_DATA_HOME",
        "With neither --home nor QUIRE_HOME, the home is $XDG_DATA_HOME/quire.",
    ),
    (
        "HOME",
        "With none of the above, the home is ~/.local/share/quire.",
    ),
    (
        "NO_COLOR",
        "When set and not empty, no colors (colors appear only when stdout is a terminal anyway).",
    ),
    (
        "TERM",
        "watch redraws its view in place on a terminal unless TERM is dumb.",
    ),
    (
        "QUIRE_NOW",
        "An RFC 3339 instant used as now for ages, durations of active runs, list --since and prune (tests, reproducible reports).",
    ),
    (
        "QUIRE_BUSY_TIMEOUT_MS",
        "How long to wait for another process's lock on the store (default 10000).",
    ),
    (
        "QUIRE_CONTAINMENT, QUIRE_PIDNS",
        "Passed on to the workers that reconcile and retry start (see quire-run(1)).",
    ),
];

/// The exit statuses of a command that either does what it was asked or
/// says why not.
const DONE_OR_ERROR: &[(&str, &str)] = &[
    ("0", "it did what was asked"),
    (
        "1",
        "it could not: one line `quire-runs: error: ...` on stderr, often followed by a `hint: ...` line (no home at the path, no run matches, the store is locked)",
    ),
];

/// A run's outcome as the exit status (`show --exit-status`, `wait`, ...).
const COMPLETED: &[(&str, &str)] = &[
    ("0", "the run completed"),
    (
        "1",
        "it failed or was superseded, or an error (`quire-runs: error: ...` on stderr)",
    ),
];

const PAGES: &[Page] = &[
    Page {
        command: "",
        description: &[
            "quire-runs reads and repairs the CI runs that quire-run recorded in quire's home: for people at a terminal (tables, colors when stdout is a terminal and NO_COLOR is unset), for scripts (--json, exit statuses) and for cron (reconcile, prune). A run is one push of one ref: pending, then active while a worker executes it, then complete, failed (with a failure kind) or superseded (a newer push of its ref).",
            "Human output goes to stdout; notes such as `no runs yet` go to stderr, so a pipe sees only data. A reader that goes away (| head) is not an error. RUN is a run id, or a prefix of one that matches a single run, in any case. quire-runs never creates a home: a home that does not exist is an error.",
        ],
        exit: DONE_OR_ERROR,
        examples: &[
            ("quire-runs list", "The newest runs, newest first."),
            (
                "quire-runs list --state failed --ref main --json",
                "The failed runs of main, for a script.",
            ),
            (
                "quire-runs watch --ref main --exit-status",
                "Follow the newest run of main to its end; exit 0 iff it completed.",
            ),
            (
                "* * * * * quire-runs --home /srv/quire reconcile >/dev/null",
                "A crontab line: repair what a crash or a reboot left, every minute.",
            ),
        ],
    },
    Page {
        command: "list",
        description: &[
            "Lists runs, newest first: RUN (a short id: the shortest unique suffix of its id, at least 8 characters, which every command taking RUN accepts), REPO, REF (main for a branch, tag v1 for a tag), SHA (12 characters), STATE (failed (kind) for failures), DURATION, AGE and SUBJECT (the commit's subject). The filters combine; --state flags combine with OR. -R/--repo takes a repository's name (as quire-runs repos lists it), the name without .git, an earlier name or the path to its git directory; --ref takes a full ref, a branch or tag name (main matches refs/heads/main and refs/tags/main) or a glob (release/*); -b/--branch a branch or a glob; -c/--commit matches ids starting with the prefix; --since takes a span (90s, 20m, 1h30m, 3d, 2w). With no runs, prints `no runs yet` (or `no runs match`) on stderr.",
        ],
        exit: &[
            ("0", "the runs were listed, even none"),
            (
                "1",
                "an error, such as a --repo quire does not know (`no repository \"X\" is known`)",
            ),
        ],
        examples: &[
            (
                "quire-runs list --repo app --since 2h",
                "The runs of app.git queued in the last two hours.",
            ),
            (
                "quire-runs list --state failed --state superseded --limit 5",
                "The five newest runs that did not complete.",
            ),
            (
                "quire-runs list --json | jq -r '.[].id'",
                "The ids, for a script.",
            ),
        ],
    },
    Page {
        command: "show",
        description: &[
            "Shows a run: its id, repository and path, ref, commit, state, what a failure kind means and the failure detail, its times and duration, how its steps were sandboxed and its processes contained, for an active run its worker and what it runs now; then a table of its jobs in plan order, each followed by its steps, the files its jobs kept (artifacts, with the download command), and the notifiers that ran when it ended. --json prints the run as one object with its jobs, artifacts and notifications.",
        ],
        exit: &[
            (
                "0",
                "the run was shown; with --exit-status, only if it completed",
            ),
            (
                "1",
                "no run matches RUN, or the prefix is ambiguous (the candidates are named); with --exit-status, also a run that failed, was superseded or has not ended",
            ),
        ],
        examples: &[
            ("quire-runs show 01a2249c", "A run, by a prefix of its id."),
            (
                "quire-runs show 01a2249c --exit-status >/dev/null && echo passed",
                "Its outcome, for a script.",
            ),
        ],
    },
    Page {
        command: "logs",
        description: &[
            "Prints the output of a run's steps in plan order, each step headed by `==> JOB step N: CMD <==` (no header with --step). A log is read from its file while there is one, else from the copy packed into the store once the run ended: the output is the same. --timestamps starts each line with the time quire read it; --stream keeps one stream. --follow keeps printing as the run writes, waiting for steps that have not started, until the run ends.",
        ],
        exit: &[
            (
                "0",
                "the logs were printed; with --follow, the run completed",
            ),
            (
                "1",
                "no such run, job or step; with --follow, a run that failed or was superseded",
            ),
        ],
        examples: &[
            (
                "quire-runs logs 01a2249c test --step 2",
                "The output of job test's second step.",
            ),
            (
                "quire-runs logs 01a2249c --follow",
                "Everything the run prints, as it prints it.",
            ),
        ],
    },
    Page {
        command: "watch",
        description: &[
            "Follows a run's jobs until the run ends, then exits. Without RUN, the newest run (of --repo and --ref when given). On a terminal, a view redrawn in place: a line for the run and one per job with its state, how long it took and the step it runs now or how it failed; else a line per change (`job build started`, `job test failed in 59.0s (exit 101; step 1: cargo test)`), ending with the run's outcome. What the pipeline controls (job ids, commands, details) is printed with control characters escaped.",
        ],
        exit: &[
            (
                "0",
                "the run ended (or stdout's reader went away); with --exit-status, only if it completed",
            ),
            (
                "1",
                "no run to watch, or an error; with --exit-status, a run that failed, was superseded or had not ended when the reader went away",
            ),
        ],
        examples: &[
            ("quire-runs watch", "Follow the newest run until it ends."),
            (
                "quire-runs watch --repo app --ref main --exit-status && deploy",
                "Wait for main's newest run of app.git and go on only if it completed.",
            ),
        ],
    },
    Page {
        command: "download",
        description: &[
            "Writes the files a run's jobs kept (their artifacts) to --dir (default: the current directory) as DIR/JOB/PATH, each checked against the size and SHA-256 recorded when it was kept before it takes its name. Existing files are never overwritten: if any target exists, nothing is written. --job keeps to one job. A run that kept nothing is said on stderr.",
        ],
        exit: &[
            ("0", "every file was written (or there was none)"),
            (
                "1",
                "a target exists, a kept file no longer matches its record or is missing, or no such run or job",
            ),
        ],
        examples: &[(
            "quire-runs download 01a2249c --job build --dir out",
            "Copy build's kept files to out/build/.",
        )],
    },
    Page {
        command: "wait",
        description: &[
            "Blocks until the run has ended, looking every --interval (default 1s), then prints `run ID STATE` (with the failure kind).",
        ],
        exit: COMPLETED,
        examples: &[(
            "quire-runs wait 01a2249c && echo passed",
            "Wait for a run; go on only if it completed.",
        )],
    },
    Page {
        command: "cancel",
        description: &[
            "Cancels a pending or active run: it fails with the kind cancelled, its running job is aborted and the rest skipped. Its worker notices within half a second and ends the running step; if the worker is gone, cancel ends the leftover processes itself. Prints `cancelled run ID (it was STATE)`.",
        ],
        exit: &[
            ("0", "the run was cancelled"),
            (
                "1",
                "it had already ended (`run ID is already STATE; there is nothing to cancel`), or no such run",
            ),
        ],
        examples: &[(
            "quire-runs cancel 01a2249c",
            "Stop a run that is not worth finishing.",
        )],
    },
    Page {
        command: "retry",
        description: &[
            "Queues a new run of the same repository, ref and commit (superseding the ref's live run, if any) and starts workers for the pending runs while slots are free. Prints `queued run NEW, a retry of OLD`.",
        ],
        exit: &[
            ("0", "the new run was queued"),
            (
                "1",
                "no such run, or its repository is known by name only (from an upgraded store) until a push records its path",
            ),
        ],
        examples: &[(
            "quire-runs retry 01a2249c",
            "Run the same commit again, after fixing what broke outside the repository.",
        )],
    },
    Page {
        command: "prune",
        description: &[
            "Deletes runs that ended longer than --older-than ago, with their jobs, steps, packed logs and files, except the newest --keep ended runs of each repository and ref; pending and active runs are never touched. Both default to [retention] in config.toml. Then it trims every repository's jobs' caches to cache_max_mb, least recently used first, and removes what interrupted cache saves left. --dry-run says what would go and changes nothing. With neither --older-than nor [retention] older_than, it is a usage error (exit 2).",
        ],
        exit: &[
            ("0", "pruned (or, with --dry-run, reported)"),
            ("1", "the store cannot be used"),
        ],
        examples: &[
            (
                "quire-runs prune --older-than 30d --keep 5",
                "Delete runs ended over 30 days ago, keeping the 5 newest of each ref.",
            ),
            (
                "0 3 * * * quire-runs --home /srv/quire prune >/dev/null",
                "A crontab line: prune every night by config.toml's [retention].",
            ),
        ],
    },
    Page {
        command: "reconcile",
        description: &[
            "Repairs what a crash left, safely at any moment: fails every active run whose worker is provably gone (its process is gone, or its lease ran out) as orphaned, ends the run's leftover processes (its cgroup, and every process carrying its QUIRE_RUN_ID), packs the logs of ended runs whose worker died before packing them, and starts a worker for pending runs when a slot is free. Runs whose worker is alive are never touched. Prints a line per thing done and a summary; --dry-run changes nothing.",
        ],
        exit: &[
            ("0", "done (whatever it found)"),
            ("1", "the store cannot be used"),
        ],
        examples: &[
            (
                "* * * * * quire-runs --home /srv/quire reconcile >/dev/null",
                "A crontab line: repair every minute.",
            ),
            (
                "quire-runs reconcile --dry-run",
                "What cron would repair now.",
            ),
        ],
    },
    Page {
        command: "repos",
        description: &[
            "Lists the repositories quire knows: REPO (the name --repo takes), PATH, HOOK (what git would run on a push now: quire, quire (another home), not quire's, missing, repository gone), RUNS and LAST RUN. A repository whose pushes would start no run here gets a warning on stderr, also when core.hooksPath sends git to another folder.",
        ],
        exit: DONE_OR_ERROR,
        examples: &[(
            "quire-runs repos",
            "Check that git runs quire's hook in every repository.",
        )],
    },
    Page {
        command: "caches",
        description: &[
            "Lists the jobs' caches the home keeps between runs: REPO, JOB, BRANCH, SIZE and LAST USED. prune trims them to cache_max_mb.",
        ],
        exit: DONE_OR_ERROR,
        examples: &[(
            "quire-runs caches --json",
            "The caches with their paths, for a script.",
        )],
    },
    Page {
        command: "serve",
        description: &[
            "Serves the home's runs read-only over HTTP: the run list (`/`, filters repo, ref, state as query parameters, paged with ?before=RUN), a run (`/runs/ID`), a job's logs followed live while it runs (`/runs/ID/jobs/JOB`), the repositories with the newest run of each branch (`/repos`), status badges (`/badge/REPO/BRANCH.svg`) and a JSON API (`/api/runs`, `/api/runs/ID`) whose bodies are exactly list --json's and show --json's. Only GET and HEAD are answered (405 otherwise); nothing a visitor sends changes anything. --listen is IP:PORT, 127.0.0.1:8080 by default (loopback: put it behind a reverse proxy with authentication to expose it; a non-loopback address is warned about). Prints `quire-runs serve: listening on http://ADDR/` with the address it bound, then a line per request on stderr. Runs until stopped. A --listen that is not IP:PORT is a usage error.",
        ],
        exit: &[
            (
                "0",
                "never: it serves until a signal (Ctrl-C, SIGTERM) ends it",
            ),
            (
                "1",
                "the store cannot be opened (no home, an older schema: run quire-runs list once) or the address cannot be bound",
            ),
        ],
        examples: &[
            (
                "quire-runs serve",
                "The web view on http://127.0.0.1:8080/.",
            ),
            (
                "quire-runs serve --listen 127.0.0.1:0",
                "On a free port, printed on its first line.",
            ),
        ],
    },
    Page {
        command: "completions",
        description: &[
            "Prints quire-runs' completion script for bash, elvish, fish, powershell or zsh. It needs no home.",
        ],
        exit: DONE_OR_ERROR,
        examples: &[
            (
                "quire-runs completions bash > /usr/share/bash-completion/completions/quire-runs",
                "Complete quire-runs' commands and flags in bash, for every user.",
            ),
            (
                "quire-runs completions fish > ~/.config/fish/completions/quire-runs.fish",
                "The same in fish.",
            ),
        ],
    },
    Page {
        command: "man",
        description: &[
            "Prints quire-runs' manual page (roff), or that of one of its commands (`man list`: quire-runs-list(1)); with --dir, writes them all into a folder of man pages instead. It needs no home.",
        ],
        exit: DONE_OR_ERROR,
        examples: &[
            ("quire-runs man list | man -l -", "Read quire-runs-list(1)."),
            (
                "quire-runs man --dir /usr/local/share/man/man1",
                "Install every page of quire-runs, for man quire-runs and man quire-runs-list.",
            ),
        ],
    },
];
