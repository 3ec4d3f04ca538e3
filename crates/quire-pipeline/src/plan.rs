//! The order jobs run in, and whether a job runs for a given ref.

use std::collections::BTreeSet;

use quire_model::refs::{RefGlob, RefName};

use crate::pipeline::{Job, Pipeline};

impl Job {
    /// Whether the job's `when` lets it run for this ref (no `when`:
    /// always): a branch against `branches`, a tag against `tags`, by the
    /// one glob rule ([`RefGlob`]); any other ref never.
    pub fn runs_on(&self, target: &RefName) -> bool {
        let Some(when) = &self.when else {
            return true;
        };
        let matches = |patterns: &[RefGlob], name: &str| patterns.iter().any(|p| p.matches(name));
        if let Some(branch) = target.branch() {
            matches(&when.branches, branch)
        } else if let Some(tag) = target.tag() {
            matches(&when.tags, tag)
        } else {
            false
        }
    }
}

impl Pipeline {
    /// Job indexes in an order where every job comes after the jobs it
    /// needs; among jobs ready at the same time, file order decides.
    pub fn order(&self) -> Vec<usize> {
        let n = self.jobs.len();
        let mut waiting: Vec<usize> = self.jobs.iter().map(|j| j.needs().count()).collect();
        let mut feeds: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, job) in self.jobs.iter().enumerate() {
            for need in job.needs() {
                feeds[need].push(i);
            }
        }
        let mut ready: BTreeSet<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(next) = ready.pop_first() {
            order.push(next);
            for &fed in &feeds[next] {
                waiting[fed] -= 1;
                if waiting[fed] == 0 {
                    ready.insert(fed);
                }
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(text: &str) -> Pipeline {
        Pipeline::parse(text).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn order_puts_needs_first_and_breaks_ties_by_file_order() {
        let p = pipeline(
            r#"
            [jobs.deploy]
            inputs = ["test", "lint"]
            sh = "true"
            [jobs.lint]
            inputs = ["quire/push"]
            sh = "true"
            [jobs.test]
            inputs = ["build"]
            sh = "true"
            [jobs.build]
            inputs = ["quire/push"]
            sh = "true"
            "#,
        );
        let ids: Vec<&str> = p
            .order()
            .into_iter()
            .map(|i| p.jobs[i].id.as_str())
            .collect();
        assert_eq!(ids, ["lint", "build", "test", "deploy"]);
    }

    #[test]
    fn when_filters_match_branches_and_tags_by_glob() {
        let p = pipeline(
            r#"
            [jobs.release]
            inputs = ["quire/push"]
            sh = "true"
            when = { branches = ["main", "release/*"], tags = ["v*"] }
            [jobs.always]
            inputs = ["quire/push"]
            sh = "true"
            "#,
        );
        let release = p.job("release").unwrap();
        for (ref_name, runs) in [
            ("refs/heads/main", true),
            ("refs/heads/release/1.0", true),
            ("refs/heads/release/1.0/fix", false),
            ("refs/heads/release/1.0/hotfix", false),
            ("refs/heads/feature", false),
            ("refs/tags/v1.2", true),
            ("refs/tags/1.2", false),
            ("refs/notes/commits", false),
        ] {
            assert_eq!(release.runs_on(&RefName::new(ref_name)), runs, "{ref_name}");
            assert!(p.job("always").unwrap().runs_on(&RefName::new(ref_name)));
        }
    }
}
