//! Same-budget training data: a pool of examples taken in order, cycling, until their tokens
//! reach a budget — what a control model of a comparison trains on, so that it sees as many
//! tokens as the model it is compared with.

use crate::error::Result;

/// Tokens of `text` under `tokenizer` (no special tokens).
///
/// Errors: the tokenizer's.
pub fn count_tokens(tokenizer: &kailin_lm::Tokenizer, text: &str) -> Result<usize> {
    Ok(tokenizer.encode(text, false)?.len())
}

/// Items of `pool` in order, cycling, until their sizes (`size`, in tokens, each counted as
/// at least one) reach `budget`; at least one item when the pool has any.
///
/// Errors: the first error of `size`.
pub fn to_token_budget<T: Clone>(pool: &[T], budget: usize, size: impl Fn(&T) -> Result<usize>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    if pool.is_empty() {
        return Ok(out);
    }
    let sizes = pool.iter().map(&size).collect::<Result<Vec<usize>>>()?;
    let mut n = 0;
    for (item, s) in pool.iter().zip(&sizes).cycle() {
        if n >= budget.max(1) {
            break;
        }
        n += (*s).max(1);
        out.push(item.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_cycle_the_pool_until_reached() {
        let pool = [3usize, 5, 2];
        let size = |n: &usize| Ok(*n);
        assert_eq!(to_token_budget(&pool, 9, size).unwrap(), vec![3, 5, 2]);
        assert_eq!(to_token_budget(&pool, 12, size).unwrap(), vec![3, 5, 2, 3]);
        assert_eq!(to_token_budget(&pool, 0, size).unwrap(), vec![3]);
        assert!(to_token_budget::<usize>(&[], 10, size).unwrap().is_empty());
        let failing = |_: &usize| Err(crate::Error::Options("no tokenizer".into()));
        assert!(to_token_budget(&pool, 5, failing).is_err(), "a size error is an error, not one token");
    }
}
