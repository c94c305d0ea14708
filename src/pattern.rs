//! `pname` patterns as the process table matches them. All of a file's patterns are compiled
//! once, when the file loads, into the [`PatternSet`] a snapshot matches each command line
//! against in one pass (`procs`); that compile is also what proves every pattern valid. A
//! pattern is compiled alone only when a question needs it alone (a pattern no set holds, a
//! pid to confirm for a restart), on first need.
//!
//! Why not compile each pattern alone at load as well: for a 500-service file that was as much
//! again as building the set, some 4% of a healthy tick (README, "Benchmarks").
//!
//! What this module must not do: read the process table or the config; it only compiles.

use regex::{Regex, RegexSet};

/// A pattern as the process table asks it: by its text (how a [`PatternSet`] knows it), or
/// compiled alone when it must be matched alone.
pub trait Pattern: std::fmt::Debug {
    /// The pattern's source, as written.
    fn text(&self) -> &str;
    /// The pattern compiled alone (on first need, for a pattern that is not yet); `None` if it
    /// does not compile alone. A set compiles its patterns without their capture groups, so a
    /// pattern that fits in a set may not fit alone; the config compiles a pattern with groups
    /// alone when it loads, so this is `None` only past the very edge of regex's size limit.
    /// Who asks must then not take the pattern as matching.
    fn regex(&self) -> Option<&Regex>;
}

impl Pattern for Regex {
    fn text(&self) -> &str {
        self.as_str()
    }
    fn regex(&self) -> Option<&Regex> {
        Some(self)
    }
}

/// Patterns compiled together: the sets of consecutive `sources` (sorted, each once), each
/// with the index of its first: one set when they fit in one (regex's size limit), else as many
/// as they need.
#[derive(Debug, Clone, Default)]
pub struct PatternSet {
    pub sources: Vec<String>,
    pub sets: Vec<(usize, RegexSet)>,
    /// Whether each source is in one of `sets`. One that fits in no set, even alone, is not:
    /// the config refuses such a pattern; anywhere else it is matched alone, when asked.
    pub covered: Vec<bool>,
}

impl PatternSet {
    /// The set of `sources` (duplicates once).
    pub fn new<'a>(sources: impl IntoIterator<Item = &'a str>) -> PatternSet {
        let mut sources: Vec<&str> = sources.into_iter().collect();
        sources.sort_unstable();
        sources.dedup();
        if sources.is_empty() {
            return PatternSet::default();
        }
        let sets = sets_of(&sources, 0);
        let mut covered = vec![false; sources.len()];
        for (at, set) in &sets {
            covered[*at..*at + set.len()].fill(true);
        }
        PatternSet {
            sets,
            covered,
            sources: sources.into_iter().map(str::to_string).collect(),
        }
    }

    /// Whether `source` is compiled in one of the sets.
    pub fn covers(&self, source: &str) -> bool {
        self.sources
            .binary_search_by(|s| s.as_str().cmp(source))
            .is_ok_and(|i| self.covered[i])
    }
}

/// Sets of `sources` (`at` the index of the first), halved until each fits.
fn sets_of(sources: &[&str], at: usize) -> Vec<(usize, RegexSet)> {
    match RegexSet::new(sources) {
        Ok(set) => vec![(at, set)],
        Err(_) if sources.len() > 1 => {
            let half = sources.len() / 2;
            let mut sets = sets_of(&sources[..half], at);
            sets.extend(sets_of(&sources[half..], at + half));
            sets
        }
        Err(_) => Vec::new(),
    }
}

/// What the parse of a pattern (no compile) says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// It has capture groups: compiled alone, it is larger than in a set, which drops them.
    pub groups: bool,
}

/// Parses `source` (no compile): why it is not a valid pattern, with the words of the syntax
/// errors `Regex::new` gives; else what the parse says of it.
pub fn parse(source: &str) -> Result<Parsed, String> {
    let hir = regex_syntax::Parser::new()
        .parse(source)
        .map_err(|e| e.to_string())?;
    Ok(Parsed {
        groups: hir.properties().explicit_captures_len() > 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_holds_each_source_once_sorted_and_knows_what_it_covers() {
        let set = PatternSet::new(["b+", "^a", "b+"]);
        assert_eq!(set.sources, ["^a", "b+"]);
        assert!(set.covers("^a") && set.covers("b+"));
        assert!(!set.covers("c"));
        assert!(PatternSet::new([]).sets.is_empty());
    }

    #[test]
    fn syntax_errors_are_the_ones_regex_gives() {
        for bad in ["(web", "[a-", "a{2,1}", r"\p{Nope}"] {
            let ours = parse(bad).unwrap_err();
            let theirs = Regex::new(bad).unwrap_err().to_string();
            assert_eq!(ours.lines().last(), theirs.lines().last(), "{bad}");
        }
        assert_eq!(parse("^python3 .*app\\.py$"), Ok(Parsed { groups: false }));
        assert_eq!(parse("^(python3|ruby) app"), Ok(Parsed { groups: true }));
        assert_eq!(parse("^(?:python3|ruby) app"), Ok(Parsed { groups: false }));
    }

    /// Why a pattern with groups is compiled alone when its file loads: a set drops the groups,
    /// and this one fits in a set but not alone.
    #[test]
    fn a_pattern_with_groups_may_fit_in_a_set_and_not_alone() {
        let p = "^sleep 4242$|(?:(a)){150000}";
        assert!(RegexSet::new([p]).is_ok());
        assert!(Regex::new(p).is_err());
        assert_eq!(parse(p), Ok(Parsed { groups: true }));
    }
}
