//! Foreign-key order: parents before children for inserts and updates, children before parents
//! for deletes, so a restore never needs deferred or disabled constraints.
//!
//! Kahn's algorithm over the tables of the run, with an edge from each parent to each child that
//! references it (self-references are left out by the catalog; they need no order between
//! tables). A cycle cannot be ordered: its tables follow in name order and the caller is told, so
//! the plan can say that constraints on that cycle must be deferrable.

use std::collections::BTreeSet;

use crate::shape::TableName;

/// Indexes of `tables` (name, parents) parents first, and whether a cycle had to be broken.
pub fn parents_first(tables: &[(TableName, Vec<TableName>)]) -> (Vec<usize>, bool) {
    let index = |name: &TableName| tables.iter().position(|(n, _)| n == name);
    let mut pending: Vec<usize> = vec![0; tables.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); tables.len()];
    for (child, (_, parents)) in tables.iter().enumerate() {
        for parent in parents.iter().filter_map(index).filter(|&p| p != child) {
            pending[child] += 1;
            children[parent].push(child);
        }
    }
    let mut ready: BTreeSet<(TableName, usize)> = (0..tables.len())
        .filter(|&i| pending[i] == 0)
        .map(|i| (tables[i].0.clone(), i))
        .collect();
    let mut order = Vec::with_capacity(tables.len());
    let mut cyclic = false;
    while order.len() < tables.len() {
        let next = match ready.pop_first() {
            Some((_, i)) => i,
            None => {
                // A cycle: release the first remaining table by name.
                cyclic = true;
                let i = (0..tables.len())
                    .filter(|&i| pending[i] > 0)
                    .min_by_key(|&i| &tables[i].0)
                    .expect("tables left");
                pending[i] = 0;
                i
            }
        };
        order.push(next);
        for &c in &children[next] {
            if pending[c] > 0 {
                pending[c] -= 1;
                if pending[c] == 0 {
                    ready.insert((tables[c].0.clone(), c));
                }
            }
        }
    }
    (order, cyclic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> TableName {
        TableName::new("public", name)
    }

    #[test]
    fn parents_come_first() {
        let tables = vec![
            (t("orders"), vec![t("customers")]),
            (t("items"), vec![t("orders"), t("products")]),
            (t("customers"), vec![t("regions")]),
            (t("regions"), vec![]),
            (t("products"), vec![t("elsewhere")]),
        ];
        let (order, cyclic) = parents_first(&tables);
        let names: Vec<&str> = order.iter().map(|&i| tables[i].0.name.as_str()).collect();
        assert_eq!(
            names,
            ["products", "regions", "customers", "orders", "items"]
        );
        assert!(!cyclic);
    }

    #[test]
    fn cycles_are_broken_and_reported() {
        let tables = vec![
            (t("a"), vec![t("b")]),
            (t("b"), vec![t("a")]),
            (t("c"), vec![t("a")]),
        ];
        let (order, cyclic) = parents_first(&tables);
        assert!(cyclic);
        assert_eq!(order.len(), 3);
        assert_eq!(*order.last().unwrap(), 2);
    }
}
