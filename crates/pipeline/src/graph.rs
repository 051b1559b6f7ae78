//! The task graph: adjacency in both directions, topological order, and the cycles that
//! make a document invalid. Everything here is O(tasks + edges) and iterative, so a chain of
//! ten thousand tasks neither slows down nor overflows a stack.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::document::Edge;

/// Adjacency by task index (document order).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Graph {
    names: HashMap<String, usize>,
    /// The tasks each task waits for, each once.
    pub upstream: Vec<Vec<u32>>,
    /// The tasks waiting for each task, each once.
    pub downstream: Vec<Vec<u32>>,
    /// The edges by name, each pair once, with the first reason found.
    pub edges: Vec<Edge>,
    pairs: HashSet<(u32, u32)>,
}

impl Graph {
    /// A graph of the named tasks and no edges; a repeated name stands for its first task.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Graph {
        let mut index = HashMap::new();
        let mut n = 0;
        for (i, name) in names.into_iter().enumerate() {
            index.entry(name.to_string()).or_insert(i);
            n = i + 1;
        }
        let names = index;
        Graph {
            names,
            upstream: vec![Vec::new(); n],
            downstream: vec![Vec::new(); n],
            edges: Vec::new(),
            pairs: HashSet::new(),
        }
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.upstream.len()
    }

    /// Adds `from → to` unless present; says whether it was new.
    pub fn add(&mut self, from: usize, to: usize, edge: Edge) -> bool {
        if !self.pairs.insert((from as u32, to as u32)) {
            return false;
        }
        self.upstream[to].push(from as u32);
        self.downstream[from].push(to as u32);
        self.edges.push(edge);
        true
    }

    /// Kahn's algorithm, ready tasks taken in document order; tasks on or after a cycle are
    /// left out.
    pub fn topological_order(&self) -> Vec<usize> {
        let mut waiting: Vec<usize> = self.upstream.iter().map(Vec::len).collect();
        let mut ready: VecDeque<usize> = (0..self.len()).filter(|&i| waiting[i] == 0).collect();
        let mut order = Vec::with_capacity(self.len());
        while let Some(i) = ready.pop_front() {
            order.push(i);
            for &d in &self.downstream[i] {
                let d = d as usize;
                waiting[d] -= 1;
                if waiting[d] == 0 {
                    ready.push_back(d);
                }
            }
        }
        order
    }

    /// Cycles, each as the task indices along it (the first not repeated at the end), at most
    /// `limit` of them. Tasks that merely follow a cycle are not reported.
    pub fn cycles(&self, limit: usize) -> Vec<Vec<usize>> {
        let n = self.len();
        let mut alive = vec![true; n];
        let mut found = Vec::new();
        loop {
            trim(self, &mut alive);
            let Some(start) = (0..n).find(|&i| alive[i]) else {
                break;
            };
            if found.len() == limit {
                break;
            }
            // Every live task has a live successor, so walking forward must repeat a task.
            let mut seen: HashMap<usize, usize> = HashMap::new();
            let mut path = Vec::new();
            let mut at = start;
            while let std::collections::hash_map::Entry::Vacant(e) = seen.entry(at) {
                e.insert(path.len());
                path.push(at);
                match self.downstream[at]
                    .iter()
                    .map(|&d| d as usize)
                    .find(|&d| alive[d])
                {
                    Some(next) => at = next,
                    None => break,
                }
            }
            let Some(&from) = seen.get(&at) else { break };
            let cycle = path[from..].to_vec();
            if cycle.is_empty()
                || !self.downstream[*cycle.last().unwrap_or(&at)].contains(&(at as u32))
            {
                // Defensive: a dead end means trimming missed something; drop the start.
                alive[start] = false;
                continue;
            }
            for &i in &cycle {
                alive[i] = false;
            }
            found.push(cycle);
        }
        found
    }
}

/// Repeatedly removes live tasks without a live predecessor or without a live successor,
/// leaving only tasks on cycles (or between them).
fn trim(graph: &Graph, alive: &mut [bool]) {
    let n = graph.len();
    let live =
        |list: &Vec<u32>, alive: &[bool]| list.iter().filter(|&&j| alive[j as usize]).count();
    let mut ins: Vec<usize> = (0..n).map(|i| live(&graph.upstream[i], alive)).collect();
    let mut outs: Vec<usize> = (0..n).map(|i| live(&graph.downstream[i], alive)).collect();
    let mut queue: VecDeque<usize> = (0..n)
        .filter(|&i| alive[i] && (ins[i] == 0 || outs[i] == 0))
        .collect();
    while let Some(i) = queue.pop_front() {
        if !alive[i] {
            continue;
        }
        alive[i] = false;
        for &d in &graph.downstream[i] {
            let d = d as usize;
            if alive[d] {
                ins[d] -= 1;
                if ins[d] == 0 {
                    queue.push_back(d);
                }
            }
        }
        for &u in &graph.upstream[i] {
            let u = u as usize;
            if alive[u] {
                outs[u] -= 1;
                if outs[u] == 0 {
                    queue.push_back(u);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::EdgeOrigin;

    fn graph(n: usize, edges: &[(usize, usize)]) -> Graph {
        let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        let mut g = Graph::new(names.iter().map(String::as_str));
        for &(a, b) in edges {
            g.add(
                a,
                b,
                Edge {
                    from: names[a].clone(),
                    to: names[b].clone(),
                    origin: EdgeOrigin::Declared,
                },
            );
        }
        g
    }

    #[test]
    fn cycles_are_found_and_tasks_after_them_are_not_blamed() {
        let g = graph(5, &[(0, 1), (1, 2), (2, 0), (2, 3), (4, 4)]);
        let mut cycles = g.cycles(10);
        cycles.sort();
        assert_eq!(cycles, vec![vec![0, 1, 2], vec![4]]);
        assert_eq!(
            graph(3, &[(0, 1), (1, 2)]).cycles(10),
            Vec::<Vec<usize>>::new()
        );
        assert_eq!(
            graph(3, &[(0, 2), (1, 2)]).topological_order(),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn a_long_chain_is_handled_without_recursion() {
        let n = 200_000;
        let edges: Vec<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
        let mut g = graph(n, &edges);
        assert_eq!(g.topological_order().len(), n);
        g.add(
            n - 1,
            0,
            Edge {
                from: "x".into(),
                to: "y".into(),
                origin: EdgeOrigin::Declared,
            },
        );
        assert_eq!(g.cycles(1)[0].len(), n);
    }
}
