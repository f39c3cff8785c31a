//! `BinaryTree`: the original ConCoord binary search tree (`concoord/object/binarytree.py`),
//! rewritten so that it can be used remotely, with `#[object]`.
//!
//! The original's methods took and returned `Node` objects, which cannot cross the wire
//! (msgpack cannot encode them), took the tree's `root` as an argument and never used
//! the object's own `self.root`, and its `delete` deleted nothing. Here the tree lives
//! in the object: every method works on the object's own root, so the `root`
//! parameters are dropped; values go in and out as plain integers, and `delete` really
//! deletes.
//!
//! It is a set of `i64`s kept in an *unbalanced* binary search tree, exactly like the
//! original's (the shape, and so `get_depth`, depends on the insertion order). It is
//! deliberately not a balanced tree, not a multiset (inserting a value that is already
//! present changes nothing), and not a general container: values are integers only,
//! and it holds at most [`NODES_MAX`] nodes. Nodes sit in an arena (a `Vec`) linked by
//! index, and every algorithm is iterative, so a degenerate (list-shaped) tree of any
//! allowed size cannot overflow the stack, and the state snapshots with serde.

use crate::{ObjectError, Types};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The most nodes a tree holds; inserting a new value beyond it is a `RuntimeError`.
pub const NODES_MAX: usize = 1_000_000;

/// One node of the arena: a value and the indexes of its children.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Node {
    value: i64,
    left: Option<u32>,
    right: Option<u32>,
}

/// A replicated binary search tree of distinct integers: `BinaryTree()` in the original.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BinaryTree {
    /// Every node, in no particular order (deleting moves the last node into the hole).
    nodes: Vec<Node>,
    root: Option<u32>,
}

/// Where a link to a node lives: the root pointer, or a child slot of a node.
#[derive(Clone, Copy)]
enum Link {
    Root,
    Left(u32),
    Right(u32),
}

#[concoord_object::object]
impl BinaryTree {
    /// Adds `data` to the tree; returns None. A value that is already present is
    /// ignored (the tree is a set). A new value beyond [`NODES_MAX`] nodes is a
    /// `RuntimeError`.
    pub fn insert(&mut self, data: i64) -> Result<(), ObjectError> {
        let (link, found) = self.search(data);
        if found.is_some() {
            return Ok(());
        }
        if self.nodes.len() >= NODES_MAX {
            return Err(ObjectError::runtime_error(format!(
                "the tree is full: it holds at most {NODES_MAX} nodes"
            )));
        }
        let index = u32::try_from(self.nodes.len()).expect("NODES_MAX fits in u32");
        self.nodes.push(Node { value: data, left: None, right: None });
        self.set_link(link, Some(index));
        Ok(())
    }

    /// The original's name for adding a value: the same as `insert`. (The original
    /// returned a detached `Node` and left the tree unchanged.)
    pub fn add_node(&mut self, data: i64) -> Result<(), ObjectError> {
        self.insert(data)
    }

    /// Whether `target` is in the tree.
    pub fn find(&self, target: i64) -> bool {
        self.search(target).1.is_some()
    }

    /// Removes `target`; returns whether it was there.
    pub fn delete(&mut self, target: i64) -> bool {
        let (mut link, Some(mut index)) = self.search(target) else {
            return false;
        };
        let node = &self.nodes[index as usize];
        if let (Some(_), Some(right)) = (node.left, node.right) {
            // Two children: take the in-order successor's value (the minimum of the
            // right subtree) and remove the successor instead, which has no left child.
            let mut succ_link = Link::Right(index);
            let mut succ = right;
            while let Some(left) = self.nodes[succ as usize].left {
                succ_link = Link::Left(succ);
                succ = left;
            }
            self.nodes[index as usize].value = self.nodes[succ as usize].value;
            link = succ_link;
            index = succ;
        }
        let node = &self.nodes[index as usize];
        let child = node.left.or(node.right);
        self.set_link(link, child);
        self.remove_slot(index);
        true
    }

    /// The smallest value; `ValueError` when the tree is empty.
    pub fn get_min(&self) -> Result<i64, ObjectError> {
        let mut index = self.root.ok_or_else(empty)?;
        while let Some(left) = self.nodes[index as usize].left {
            index = left;
        }
        Ok(self.nodes[index as usize].value)
    }

    /// The largest value; `ValueError` when the tree is empty.
    pub fn get_max(&self) -> Result<i64, ObjectError> {
        let mut index = self.root.ok_or_else(empty)?;
        while let Some(right) = self.nodes[index as usize].right {
            index = right;
        }
        Ok(self.nodes[index as usize].value)
    }

    /// The number of nodes on the longest root-to-leaf path: 0 for an empty tree, 1
    /// for a single node (as the original's recursive `get_depth`).
    pub fn get_depth(&self) -> u64 {
        let mut depth = 0;
        let mut level: VecDeque<u32> = self.root.into_iter().collect();
        while !level.is_empty() {
            depth += 1;
            for _ in 0..level.len() {
                let index = level.pop_front().expect("counted");
                let node = &self.nodes[index as usize];
                level.extend(node.left);
                level.extend(node.right);
            }
        }
        depth
    }

    /// The number of values in the tree.
    pub fn get_size(&self) -> u64 {
        self.nodes.len() as u64
    }

    /// Every value, in increasing order.
    pub fn in_order(&self) -> Vec<i64> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut stack = Vec::new();
        let mut current = self.root;
        while current.is_some() || !stack.is_empty() {
            while let Some(index) = current {
                stack.push(index);
                current = self.nodes[index as usize].left;
            }
            let index = stack.pop().expect("checked non-empty");
            out.push(self.nodes[index as usize].value);
            current = self.nodes[index as usize].right;
        }
        out
    }

    /// Finds `value`: the link that points (or would point) to it, and its node index
    /// when it is present.
    fn search(&self, value: i64) -> (Link, Option<u32>) {
        let mut link = Link::Root;
        let mut current = self.root;
        while let Some(index) = current {
            let node = &self.nodes[index as usize];
            if value == node.value {
                return (link, Some(index));
            }
            (link, current) = if value < node.value {
                (Link::Left(index), node.left)
            } else {
                (Link::Right(index), node.right)
            };
        }
        (link, None)
    }

    fn set_link(&mut self, link: Link, target: Option<u32>) {
        match link {
            Link::Root => self.root = target,
            Link::Left(parent) => self.nodes[parent as usize].left = target,
            Link::Right(parent) => self.nodes[parent as usize].right = target,
        }
    }

    /// Frees the arena slot of an unlinked node: the last node moves into it, and the
    /// link to that node (found by searching for its value: values are distinct) is
    /// redirected, so the arena stays dense.
    fn remove_slot(&mut self, index: u32) {
        let last = u32::try_from(self.nodes.len() - 1).expect("NODES_MAX fits in u32");
        if index != last {
            let (link, found) = self.search(self.nodes[last as usize].value);
            debug_assert_eq!(found, Some(last));
            self.set_link(link, Some(index));
        }
        self.nodes.swap_remove(index as usize);
    }
}

fn empty() -> ObjectError {
    ObjectError::value_error("tree is empty")
}

/// Registers `BinaryTree` and the original's dotted name.
pub fn register(types: &mut Types) {
    types.register::<BinaryTree>(&["concoord.object.binarytree.BinaryTree"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CallId, Ctx, Object, ObjectType, Outcome, Value};
    use concoord_wire::{RequestNumber, SessionId, Slot, Time};

    fn call(tree: &mut BinaryTree, method: &str, args: &[Value]) -> Outcome {
        let mut wakes = Vec::new();
        let id = CallId { session: SessionId(1), request: RequestNumber(1) };
        let mut ctx = Ctx::new(id, Time(0), Slot(1), &mut wakes);
        let outcome = tree.call(&mut ctx, method, args);
        assert!(wakes.is_empty(), "a tree never wakes anyone");
        outcome
    }

    fn ok(value: impl crate::IntoValue) -> Outcome {
        Outcome::Return(value.into_value())
    }

    fn tree_of(values: &[i64]) -> BinaryTree {
        let mut tree = BinaryTree::construct(&[]).unwrap();
        for &v in values {
            assert_eq!(call(&mut tree, "insert", &[Value::Int(v)]), ok(()));
        }
        tree
    }

    /// Checks the search-tree order, that every arena node is reachable exactly once,
    /// and returns the in-order values.
    fn check(tree: &BinaryTree) -> Vec<i64> {
        let values = tree.in_order();
        assert_eq!(values.len(), tree.nodes.len(), "every node is linked exactly once");
        assert!(values.windows(2).all(|w| w[0] < w[1]), "in-order is strictly increasing");
        values
    }

    #[test]
    fn inserts_finds_and_lists_values_in_order() {
        let mut tree = tree_of(&[50, 30, 70, 20, 40, 60, 80]);
        assert_eq!(call(&mut tree, "add_node", &[Value::Int(35)]), ok(()));
        assert_eq!(call(&mut tree, "insert", &[Value::Int(30)]), ok(()), "a duplicate is ignored");
        assert_eq!(call(&mut tree, "get_size", &[]), ok(8u64));
        assert_eq!(call(&mut tree, "in_order", &[]), ok(vec![20, 30, 35, 40, 50, 60, 70, 80]));
        assert_eq!(tree.query("find", &[Value::Int(35)]), Some(Ok(Value::Bool(true))));
        assert_eq!(tree.query("find", &[Value::Int(36)]), Some(Ok(Value::Bool(false))));
        assert_eq!(tree.query("get_min", &[]), Some(Ok(Value::Int(20))));
        assert_eq!(tree.query("get_max", &[]), Some(Ok(Value::Int(80))));
        assert_eq!(tree.query("get_depth", &[]), Some(Ok(Value::Int(4))));
        assert_eq!(tree.query("insert", &[Value::Int(1)]), None, "a command is not a query");
        check(&tree);
    }

    #[test]
    fn an_empty_tree_has_no_min_or_max() {
        let mut tree = BinaryTree::default();
        for method in ["get_min", "get_max"] {
            let Outcome::Raise(e) = call(&mut tree, method, &[]) else { panic!("{method}") };
            assert_eq!(e, ObjectError::value_error("tree is empty"));
        }
        assert_eq!(call(&mut tree, "get_depth", &[]), ok(0u64));
        assert_eq!(call(&mut tree, "get_size", &[]), ok(0u64));
        assert_eq!(call(&mut tree, "in_order", &[]), ok(Vec::<i64>::new()));
        assert_eq!(call(&mut tree, "delete", &[Value::Int(1)]), ok(false));
    }

    #[test]
    fn delete_removes_leaves_single_children_and_inner_nodes() {
        let mut tree = tree_of(&[50, 30, 70, 20, 40, 60, 80, 35, 45, 65]);
        assert_eq!(call(&mut tree, "delete", &[Value::Int(99)]), ok(false));
        // A leaf, a node with one child, a node with two children, and the root.
        for (target, rest) in [
            (20, vec![30, 35, 40, 45, 50, 60, 65, 70, 80]),
            (60, vec![30, 35, 40, 45, 50, 65, 70, 80]),
            (30, vec![35, 40, 45, 50, 65, 70, 80]),
            (50, vec![35, 40, 45, 65, 70, 80]),
        ] {
            assert_eq!(call(&mut tree, "delete", &[Value::Int(target)]), ok(true), "{target}");
            assert_eq!(check(&tree), rest);
            assert!(!tree.find(target));
        }
        for v in [35, 40, 45, 65, 70, 80] {
            assert!(tree.delete(v));
            check(&tree);
        }
        assert_eq!(tree, BinaryTree::default(), "an emptied tree is the empty tree");
    }

    #[test]
    fn matches_a_btreeset_under_a_pseudo_random_workload() {
        let mut tree = BinaryTree::default();
        let mut model = std::collections::BTreeSet::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x % 500) as i64 - 250;
            if x.is_multiple_of(3) {
                assert_eq!(tree.delete(v), model.remove(&v), "step {step}");
            } else {
                tree.insert(v).unwrap();
                model.insert(v);
            }
        }
        assert_eq!(check(&tree), model.iter().copied().collect::<Vec<_>>());
        assert_eq!(tree.get_min().unwrap(), *model.first().unwrap());
        assert_eq!(tree.get_max().unwrap(), *model.last().unwrap());
    }

    #[test]
    fn a_degenerate_tree_does_not_recurse() {
        // Sorted insertions make a list: depth equals size.
        let mut tree = BinaryTree::default();
        for v in 0..20_000 {
            tree.insert(v).unwrap();
        }
        assert_eq!(tree.get_depth(), 20_000);
        assert_eq!(tree.in_order().len(), 20_000);
        assert_eq!(tree.get_max().unwrap(), 19_999);
        assert!(tree.delete(0));
        assert_eq!(tree.get_depth(), 19_999);
        let restored = BinaryTree::restore(&tree.snapshot().unwrap()).unwrap();
        assert_eq!(restored, tree);
    }

    #[test]
    fn refuses_new_values_beyond_the_bound() {
        // A full tree, linked as a right spine: 0 -> 1 -> ... -> NODES_MAX - 1.
        let last = NODES_MAX as u32 - 1;
        let nodes = (0..=last)
            .map(|i| Node { value: i64::from(i), left: None, right: (i < last).then_some(i + 1) })
            .collect();
        let mut tree = BinaryTree { nodes, root: Some(0) };
        assert_eq!(tree.get_size(), NODES_MAX as u64);
        let Outcome::Raise(e) = call(&mut tree, "insert", &[Value::Int(-1)]) else {
            panic!("a full tree must refuse a new value");
        };
        assert_eq!(
            e,
            ObjectError::runtime_error("the tree is full: it holds at most 1000000 nodes")
        );
        assert_eq!(
            call(&mut tree, "insert", &[Value::Int(7)]),
            ok(()),
            "a duplicate is still fine"
        );
        assert!(tree.delete(5));
        assert_eq!(call(&mut tree, "insert", &[Value::Int(-1)]), ok(()));
        assert_eq!(tree.get_min().unwrap(), -1);
    }

    #[test]
    fn rejects_non_integers_and_the_original_root_argument() {
        let mut tree = BinaryTree::default();
        let Outcome::Raise(e) = call(&mut tree, "insert", &[Value::Str("5".into())]) else {
            panic!("a string is not an int");
        };
        assert_eq!(e, ObjectError::type_error("insert() argument 'data': expected int, got str"));
        let Outcome::Raise(e) = call(&mut tree, "find", &[Value::Nil, Value::Int(5)]) else {
            panic!("the original's root argument is gone");
        };
        assert_eq!(e, ObjectError::type_error("find() takes 1 arguments but 2 were given"));
    }

    #[test]
    fn snapshot_and_restore_keep_the_shape() {
        let mut tree = tree_of(&[5, 3, 8, 1, 4, 9]);
        tree.delete(3);
        let restored = BinaryTree::restore(&tree.snapshot().unwrap()).unwrap();
        assert_eq!(restored, tree);
        assert_eq!(restored.in_order(), vec![1, 4, 5, 8, 9]);
        assert_eq!(restored.get_depth(), tree.get_depth());
        assert!(BinaryTree::restore(b"not a snapshot").is_err());
    }

    #[test]
    fn is_registered_under_both_names() {
        let mut types = Types::new();
        register(&mut types);
        for name in ["BinaryTree", "concoord.object.binarytree.BinaryTree"] {
            assert_eq!(types.canonical(name), Some("BinaryTree"));
        }
    }
}
