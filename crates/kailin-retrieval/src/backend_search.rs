//! Exact top-k on any burn backend (a GPU with `cuda`): documents go to the device a block at
//! a time, each block's score matrix is reduced there by `topk`, and only `k` hits per query
//! per block come back to be merged on the host.

use burn::prelude::*;
use ndarray::ArrayView2;

use crate::error::{Error, Result};
use crate::exact::{Vectors, blocks};
use crate::topk::{Hit, TopK};

/// The `k` rows of `parts` (concatenated) with the largest inner product with each query,
/// best first, computed on `device` in blocks of `block_rows` documents.
///
/// Shapes: `queries` `[n_queries, dim]`, each part `[rows, dim]` → `n_queries` lists of at
/// most `k` hits. Equal to [`ExactSearch::search`](crate::ExactSearch::search) up to the
/// order of exactly tied scores and the backend's float rounding.
///
/// Errors: parts of another dimension than the queries; a zero block size; reading results
/// back from the device.
pub fn search_backend<B: Backend>(
    queries: ArrayView2<'_, f32>,
    parts: &[Vectors<'_>],
    k: usize,
    block_rows: usize,
    device: &B::Device,
) -> Result<Vec<Vec<Hit>>> {
    let (nq, dim) = queries.dim();
    if block_rows == 0 {
        return Err(Error::Invalid("block of 0 rows".into()));
    }
    let mut tops = vec![TopK::new(k); nq];
    if nq == 0 || k == 0 {
        return Ok(vec![Vec::new(); nq]);
    }
    let q: Vec<f32> = queries.iter().copied().collect();
    let q = Tensor::<B, 2>::from_data(TensorData::new(q, [nq, dim]), device);
    for (p, start, len, global) in blocks(parts, dim, block_rows)? {
        let block: Vec<f32> = match &parts[p] {
            Vectors::F32(v) => v.slice(ndarray::s![start..start + len, ..]).iter().copied().collect(),
            Vectors::F16(v) => v.slice(ndarray::s![start..start + len, ..]).iter().map(|h| h.to_f32()).collect(),
        };
        let docs = Tensor::<B, 2>::from_data(TensorData::new(block, [len, dim]), device);
        let kk = k.min(len);
        // [nq, dim] · [dim, len] → [nq, len] → top kk along the documents.
        let (values, indices) = q.clone().matmul(docs.transpose()).topk_with_indices(kk, 1);
        let values = values.into_data().to_vec::<f32>().map_err(|e| Error::Backend(format!("{e:?}")))?;
        let indices =
            indices.into_data().convert::<i64>().to_vec::<i64>().map_err(|e| Error::Backend(format!("{e:?}")))?;
        for (qi, top) in tops.iter_mut().enumerate() {
            for j in qi * kk..(qi + 1) * kk {
                top.push(Hit { row: global + indices[j] as u64, score: values[j] });
            }
        }
    }
    Ok(tops.into_iter().map(TopK::into_hits).collect())
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use ndarray::Array2;

    use super::*;
    use crate::ExactSearch;

    #[test]
    fn backend_search_equals_the_cpu_engine() {
        let mut x = 9u64;
        let mut random = |rows: usize| {
            Array2::from_shape_fn((rows, 12), |_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
        };
        let (q, d0, d1) = (random(9), random(130), random(45));
        let parts = [Vectors::F32(d0.view()), Vectors::F32(d1.view())];
        let want = ExactSearch::new(1).unwrap().search(q.view(), &parts, 5).unwrap();
        let got = search_backend::<Flex>(q.view(), &parts, 5, 32, &Default::default()).unwrap();
        for (g, w) in got.iter().zip(&want) {
            let rows = |h: &[Hit]| h.iter().map(|h| h.row).collect::<Vec<_>>();
            assert_eq!(rows(g), rows(w));
            for (a, b) in g.iter().zip(w) {
                assert!((a.score - b.score).abs() < 1e-5);
            }
        }
    }
}
