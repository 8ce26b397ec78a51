//! Name patterns for servers and tools: `*` matches any run of characters,
//! `?` exactly one; everything else matches itself (case-sensitive).

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: Box<str>,
    literal: bool,
}

impl Pattern {
    /// Compiles `text`.
    pub fn new(text: &str) -> Self {
        Pattern {
            literal: !text.contains(['*', '?']),
            text: text.into(),
        }
    }

    /// True when the pattern has no wildcard.
    pub fn is_literal(&self) -> bool {
        self.literal
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern matches every name.
    pub fn matches_everything(&self) -> bool {
        !self.text.is_empty() && self.text.chars().all(|c| c == '*')
    }

    /// Does `name` match?
    pub fn matches(&self, name: &str) -> bool {
        if self.literal {
            return &*self.text == name;
        }
        if self.text.is_ascii() && name.is_ascii() {
            // The common case, without allocating.
            return glob_match(self.text.as_bytes(), name.as_bytes());
        }
        glob_match(
            &self.text.chars().collect::<Vec<_>>(),
            &name.chars().collect::<Vec<_>>(),
        )
    }
}

/// Iterative glob match with single-star backtracking: linear in practice.
fn glob_match<T: Copy + PartialEq + From<u8>>(p: &[T], n: &[T]) -> bool {
    let (any, one) = (T::from(b'*'), T::from(b'?'));
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == one || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == any {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == any)
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    #[test]
    fn globs() {
        let cases = [
            ("*", "anything", true),
            ("search_*", "search_issues", true),
            ("search_*", "create_issue", false),
            ("*_issue", "delete_issue", true),
            ("get_?", "get_a", true),
            ("get_?", "get_ab", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("exact", "exact", true),
            ("exact", "Exact", false),
        ];
        for (p, n, want) in cases {
            assert_eq!(Pattern::new(p).matches(n), want, "{p} vs {n}");
        }
        assert!(
            Pattern::new("ré?um*").matches("résumé_tool")
                && !Pattern::new("r?sum").matches("résumé"),
            "non-ASCII names match by character"
        );
        assert!(Pattern::new("**").matches_everything());
        assert!(!Pattern::new("a*").matches_everything());
    }
}
