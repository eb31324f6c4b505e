//! Which queries a split evaluates: those with qrels, in qrels order.

use std::collections::HashSet;

use crate::dataset::{Corpus, Dataset, Qrels, Query};
use crate::error::Result;

/// The three files that scoring (or mining) a split reads whole: its qrels,
/// the corpus and the queries (errors name the file).
pub fn read_split(dataset: &Dataset, split: &str) -> Result<(Qrels, Corpus, Vec<Query>)> {
    let qrels = dataset.read_qrels(split)?;
    let corpus = dataset.read_corpus()?;
    let queries = dataset.read_queries()?;
    Ok((qrels, corpus, queries))
}

/// The queries a split evaluates: those with qrels, sorted by id. Also
/// returns the qrels query ids that have no text in the queries file.
pub fn queries_for_split<'q>(queries: &'q [Query], qrels: &Qrels) -> (Vec<&'q Query>, Vec<String>) {
    let wanted: HashSet<&str> = qrels.by_query.keys().map(String::as_str).collect();
    let mut selected: Vec<&Query> = queries
        .iter()
        .filter(|q| wanted.contains(q.id.as_str()))
        .collect();
    selected.sort_by(|a, b| a.id.cmp(&b.id));
    let have: HashSet<&str> = selected.iter().map(|q| q.id.as_str()).collect();
    let without_text = qrels
        .by_query
        .keys()
        .filter(|id| !have.contains(id.as_str()))
        .cloned()
        .collect();
    (selected, without_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_queries_follow_qrels() {
        let query = |id: &str| Query {
            id: id.into(),
            text: format!("text of {id}"),
        };
        let queries = vec![query("q2"), query("q1"), query("q9")];
        let mut qrels = Qrels::default();
        for id in ["q1", "q2", "q3"] {
            qrels
                .by_query
                .insert(id.into(), [("d".to_string(), 1)].into());
        }
        let (selected, missing) = queries_for_split(&queries, &qrels);
        assert_eq!(
            selected.iter().map(|q| q.id.as_str()).collect::<Vec<_>>(),
            vec!["q1", "q2"]
        );
        assert_eq!(missing, vec!["q3"]);
    }
}
