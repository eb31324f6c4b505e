//! Retriever specs as users write them on the command line, parsed into a
//! typed [`RetrieverSpec`]; a spec that does not parse is a [`SpecError`]
//! naming the offending part.

use crate::fusion::{Fusion, DEFAULT_RRF_K};

/// A retriever as users name it on the command line:
///
/// - `bm25`
/// - `dense:NAME` (a dense index built for the dataset under NAME, exact flat search)
/// - `hnsw:NAME` (the same index searched through its HNSW graph, `quarry build --hnsw`)
/// - `hybrid:rrf(A,B)` or `hybrid:rrf(k=K,A,B)`: reciprocal rank fusion of
///   two retrievers (k = 60 by default)
/// - `hybrid:interp(ALPHA,A,B)`: min-max score interpolation, ALPHA on A
/// - `run:PATH`: the rankings of a TREC run file (another tool's), which may
///   not hold a comma or a parenthesis in a list
///
/// A and B are retriever specs themselves, so hybrids nest.
#[derive(Debug, Clone, PartialEq)]
pub enum RetrieverSpec {
    Bm25,
    Dense(String),
    Hnsw(String),
    RunFile(std::path::PathBuf),
    Hybrid {
        fusion: Fusion,
        first: Box<RetrieverSpec>,
        second: Box<RetrieverSpec>,
    },
}

/// Why a retriever spec did not parse; the message names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("retriever `{spec}`: {detail} (expected bm25, dense:NAME, hnsw:NAME, run:PATH, hybrid:rrf(A,B), hybrid:rrf(k=60,A,B) or hybrid:interp(0.5,A,B))")]
pub struct SpecError {
    pub spec: String,
    pub detail: String,
}

impl RetrieverSpec {
    pub fn parse(spec: &str) -> Result<RetrieverSpec, SpecError> {
        let fail = |detail: String| SpecError {
            spec: spec.to_string(),
            detail,
        };
        let text = spec.trim();
        if text == "bm25" {
            return Ok(RetrieverSpec::Bm25);
        }
        if let Some(path) = text.strip_prefix("run:") {
            let path = path.trim();
            if path.is_empty() {
                return Err(fail("run: needs the path of a TREC run file".into()));
            }
            return Ok(RetrieverSpec::RunFile(path.into()));
        }
        for (prefix, make) in [
            (
                "dense:",
                RetrieverSpec::Dense as fn(String) -> RetrieverSpec,
            ),
            ("hnsw:", RetrieverSpec::Hnsw),
        ] {
            if let Some(name) = text.strip_prefix(prefix) {
                let name = name.trim();
                if name.is_empty() || !name.chars().all(is_name_char) {
                    return Err(fail(format!(
                        "dense index name `{name}` must be non-empty letters, digits, `-`, `_` or `.`"
                    )));
                }
                return Ok(make(name.to_string()));
            }
        }
        let Some(hybrid) = text.strip_prefix("hybrid:") else {
            return Err(fail("unknown retriever".into()));
        };
        let open = hybrid
            .find('(')
            .ok_or_else(|| fail("a hybrid needs its retrievers in parentheses".into()))?;
        if !hybrid.ends_with(')') {
            return Err(fail("missing closing `)`".into()));
        }
        let method = hybrid[..open].trim();
        let args = split_top_level(&hybrid[open + 1..hybrid.len() - 1]).map_err(fail)?;
        let (fusion, retrievers) = match (method, args.as_slice()) {
            ("rrf", [a, b]) => (Fusion::Rrf { k: DEFAULT_RRF_K }, [a, b]),
            ("rrf", [k, a, b]) => {
                let value = k.trim().strip_prefix("k=").unwrap_or(k).trim();
                let k = value
                    .parse::<f64>()
                    .ok()
                    .filter(|k| k.is_finite() && *k > 0.0)
                    .ok_or_else(|| fail(format!("rrf k `{value}` is not a number > 0")))?;
                (Fusion::Rrf { k }, [a, b])
            }
            ("interp", [alpha, a, b]) => {
                let value = alpha.trim().strip_prefix("alpha=").unwrap_or(alpha).trim();
                let alpha = value
                    .parse::<f64>()
                    .ok()
                    .filter(|a| (0.0..=1.0).contains(a))
                    .ok_or_else(|| {
                        fail(format!("interp alpha `{value}` is not a number in [0, 1]"))
                    })?;
                (Fusion::Interpolation { alpha }, [a, b])
            }
            ("rrf", _) => {
                return Err(fail(format!(
                    "rrf takes 2 retrievers (and optionally k= first), got {} arguments",
                    args.len()
                )))
            }
            ("interp", _) => {
                return Err(fail(format!(
                    "interp takes an alpha and 2 retrievers, got {} arguments",
                    args.len()
                )))
            }
            (other, _) => return Err(fail(format!("unknown fusion `{other}` (rrf or interp)"))),
        };
        let first = RetrieverSpec::parse(retrievers[0])?;
        let second = RetrieverSpec::parse(retrievers[1])?;
        Ok(RetrieverSpec::Hybrid {
            fusion,
            first: Box::new(first),
            second: Box::new(second),
        })
    }

    /// A comma-separated list of specs (`quarry compare --retrievers`). Only
    /// commas outside parentheses separate, so hybrids (whose arguments are
    /// comma-separated too) can be listed: `bm25,hybrid:rrf(bm25,dense:A)`.
    pub fn parse_list(list: &str) -> Result<Vec<RetrieverSpec>, SpecError> {
        let parts = split_top_level(list).map_err(|detail| SpecError {
            spec: list.to_string(),
            detail,
        })?;
        parts.into_iter().map(RetrieverSpec::parse).collect()
    }

    /// The spec as users write it (canonical form, `k=` spelled out).
    pub fn name(&self) -> String {
        self.to_string()
    }

    /// Every dense index name the spec uses.
    pub fn dense_names(&self) -> Vec<&str> {
        match self {
            RetrieverSpec::Bm25 | RetrieverSpec::RunFile(_) => Vec::new(),
            RetrieverSpec::Dense(name) | RetrieverSpec::Hnsw(name) => vec![name.as_str()],
            RetrieverSpec::Hybrid { first, second, .. } => {
                let mut names = first.dense_names();
                names.extend(second.dense_names());
                names
            }
        }
    }
}

impl std::fmt::Display for RetrieverSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetrieverSpec::Bm25 => f.write_str("bm25"),
            RetrieverSpec::Dense(name) => write!(f, "dense:{name}"),
            RetrieverSpec::Hnsw(name) => write!(f, "hnsw:{name}"),
            RetrieverSpec::RunFile(path) => write!(f, "run:{}", path.display()),
            RetrieverSpec::Hybrid {
                fusion: Fusion::Rrf { k },
                first,
                second,
            } => write!(f, "hybrid:rrf(k={k},{first},{second})"),
            RetrieverSpec::Hybrid {
                fusion: Fusion::Interpolation { alpha },
                first,
                second,
            } => write!(f, "hybrid:interp({alpha},{first},{second})"),
        }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Splits at commas outside parentheses.
pub fn split_top_level(args: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in args.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| "unbalanced `)`".to_string())?
            }
            ',' if depth == 0 => {
                parts.push(&args[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced `(`".into());
    }
    parts.push(&args[start..]);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        assert_eq!(RetrieverSpec::parse("bm25").unwrap(), RetrieverSpec::Bm25);
        assert_eq!(
            RetrieverSpec::parse("dense:minilm").unwrap(),
            RetrieverSpec::Dense("minilm".into())
        );
        let spec = RetrieverSpec::parse("hybrid:rrf(bm25, dense:qwen-0.5b)").unwrap();
        assert_eq!(
            spec,
            RetrieverSpec::Hybrid {
                fusion: Fusion::Rrf { k: 60.0 },
                first: Box::new(RetrieverSpec::Bm25),
                second: Box::new(RetrieverSpec::Dense("qwen-0.5b".into())),
            }
        );
        assert_eq!(spec.to_string(), "hybrid:rrf(k=60,bm25,dense:qwen-0.5b)");
        assert_eq!(RetrieverSpec::parse(&spec.to_string()).unwrap(), spec);
        let nested =
            RetrieverSpec::parse("hybrid:interp(0.3,hybrid:rrf(k=10,bm25,dense:a),dense:b)")
                .unwrap();
        assert_eq!(nested.dense_names(), vec!["a", "b"]);
        let graph = RetrieverSpec::parse("hybrid:rrf(bm25,hnsw:a)").unwrap();
        assert_eq!(graph.dense_names(), vec!["a"]);
        assert_eq!(graph.to_string(), "hybrid:rrf(k=60,bm25,hnsw:a)");
        assert_eq!(RetrieverSpec::parse(&nested.to_string()).unwrap(), nested);
    }

    #[test]
    fn spec_lists_split_only_at_top_level_commas() {
        let list = RetrieverSpec::parse_list(
            "bm25, hybrid:rrf(k=20,bm25,dense:a),dense:b,hybrid:interp(0.3,hybrid:rrf(bm25,dense:a),dense:b)",
        )
        .unwrap();
        let names: Vec<String> = list.iter().map(RetrieverSpec::name).collect();
        assert_eq!(
            names,
            [
                "bm25",
                "hybrid:rrf(k=20,bm25,dense:a)",
                "dense:b",
                "hybrid:interp(0.3,hybrid:rrf(k=60,bm25,dense:a),dense:b)",
            ]
        );
        let unbalanced = RetrieverSpec::parse_list("bm25,hybrid:rrf(bm25,dense:a").unwrap_err();
        assert!(unbalanced.detail.contains("unbalanced"), "{unbalanced}");
        let empty = RetrieverSpec::parse_list("bm25,,dense:a").unwrap_err();
        assert_eq!(empty.spec, "");
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, needle) in [
            ("bm26", "unknown retriever"),
            ("dense:", "dense index name"),
            ("dense:a/b", "dense index name"),
            ("hnsw:", "dense index name"),
            ("hybrid:rrf", "parentheses"),
            ("hybrid:rrf(bm25,dense:x", "closing"),
            ("hybrid:rrf(bm25)", "2 retrievers"),
            ("hybrid:rrf(k=0,bm25,bm25)", "k `0`"),
            ("hybrid:interp(bm25,bm25)", "alpha"),
            ("hybrid:interp(1.5,bm25,bm25)", "`1.5`"),
            ("hybrid:max(bm25,bm25)", "unknown fusion `max`"),
            ("hybrid:rrf(bm25,hybrid:rrf(bm25)", "unbalanced"),
            ("hybrid:rrf(bm25,bm2)", "`bm2`"),
        ] {
            let err = RetrieverSpec::parse(spec).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }
}
