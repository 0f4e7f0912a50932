//! The CI matrix: which scenario files a partition runs. Deterministic, so the partitions of
//! one matrix (one per CI runner) are disjoint and together run every file exactly once.

use std::path::PathBuf;

/// `K/N` (1 <= K <= N).
pub fn parse_partition(s: &str) -> Result<(usize, usize), String> {
    let (k, n) = s.split_once('/').ok_or_else(|| format!("--partition takes K/N (e.g. 1/2), not {s:?}"))?;
    let k: usize = k.trim().parse().map_err(|_| format!("--partition {s}: K is not a number"))?;
    let n: usize = n.trim().parse().map_err(|_| format!("--partition {s}: N is not a number"))?;
    if n == 0 || k == 0 || k > n {
        return Err(format!("--partition {s}: need 1 <= K <= N"));
    }
    Ok((k, n))
}

/// Part `k` of `n`: the files sorted by path, every n-th starting at the k-th (so the parts
/// differ in size by at most one file).
pub fn partition_files(mut files: Vec<PathBuf>, k: usize, n: usize) -> Vec<PathBuf> {
    files.sort();
    files.dedup();
    files.into_iter().enumerate().filter(|(i, _)| i % n == k - 1).map(|(_, f)| f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn partitions_parse() {
        assert_eq!(parse_partition("1/2"), Ok((1, 2)));
        assert!(parse_partition("0/2").is_err());
        assert!(parse_partition("3/2").is_err());
        assert!(parse_partition("1-2").unwrap_err().contains("K/N"));
    }

    proptest! {
        /// Every file in exactly one partition, whatever the order the files came in.
        #[test]
        fn partitions_cover_every_file_exactly_once(names in proptest::collection::btree_set("[a-z]{1,8}", 0..30), n in 1usize..6) {
            let files: Vec<PathBuf> = names.iter().rev().map(|s| PathBuf::from(format!("scenarios/{s}.yaml"))).collect();
            let mut seen: Vec<PathBuf> = (1..=n).flat_map(|k| partition_files(files.clone(), k, n)).collect();
            let sizes: Vec<usize> = (1..=n).map(|k| partition_files(files.clone(), k, n).len()).collect();
            seen.sort();
            let mut all = files.clone();
            all.sort();
            prop_assert_eq!(seen, all);
            prop_assert!(sizes.iter().max().unwrap_or(&0) - sizes.iter().min().unwrap_or(&0) <= 1);
        }
    }
}
