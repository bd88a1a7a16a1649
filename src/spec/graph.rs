//! The step graph: a stable topological order, or the cycle that prevents one.
//!
//! Works on step indices in spec order and each step's step-inputs; knows nothing about TOML.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Why the steps have no topological order: the steps on one cycle, each an input of the next,
/// starting and ending with the same step (the one that comes first in the spec).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Cycle(pub Vec<usize>);

/// Orders steps so that each comes after its inputs, keeping spec order wherever the graph allows
/// (of the steps that are ready, the earliest in the spec goes first).
///
/// `inputs[i]` lists the steps step `i` takes as inputs, without duplicates.
pub(crate) fn topological_order(inputs: &[Vec<usize>]) -> Result<Vec<usize>, Cycle> {
    let count = inputs.len();
    let mut dependents = vec![Vec::new(); count];
    let mut waiting_on = vec![0usize; count];
    for (step, step_inputs) in inputs.iter().enumerate() {
        waiting_on[step] = step_inputs.len();
        for &input in step_inputs {
            dependents[input].push(step);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..count)
        .filter(|&step| waiting_on[step] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(count);
    while let Some(Reverse(step)) = ready.pop() {
        order.push(step);
        for &dependent in &dependents[step] {
            waiting_on[dependent] -= 1;
            if waiting_on[dependent] == 0 {
                ready.push(Reverse(dependent));
            }
        }
    }
    if order.len() == count {
        return Ok(order);
    }
    let stuck: Vec<bool> = waiting_on.iter().map(|&waiting| waiting > 0).collect();
    Err(find_cycle(inputs, &stuck))
}

/// Every stuck step waits on some stuck input, so walking inputs from one must come back to a
/// step already on the walk.
fn find_cycle(inputs: &[Vec<usize>], stuck: &[bool]) -> Cycle {
    let Some(start) = stuck.iter().position(|&is_stuck| is_stuck) else {
        return Cycle(Vec::new());
    };
    let mut walk = vec![start];
    let mut current = start;
    loop {
        let Some(&next) = inputs[current].iter().find(|&&input| stuck[input]) else {
            return Cycle(Vec::new());
        };
        if let Some(position) = walk.iter().position(|&step| step == next) {
            // walk[position..] is the cycle, each step waiting on the next; data flows the
            // other way round. Report it in data-flow order, from its earliest step.
            let mut cycle: Vec<usize> = walk[position..].iter().rev().copied().collect();
            let first = cycle
                .iter()
                .enumerate()
                .min_by_key(|&(_, step)| *step)
                .map_or(0, |(index, _)| index);
            cycle.rotate_left(first);
            cycle.push(cycle[0]);
            return Cycle(cycle);
        }
        walk.push(next);
        current = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_spec_order_where_it_can() {
        // 0 needs 2; 1 needs nothing; 2 needs nothing.
        assert_eq!(
            topological_order(&[vec![2], vec![], vec![]]),
            Ok(vec![1, 2, 0])
        );
        assert_eq!(
            topological_order(&[vec![], vec![0], vec![]]),
            Ok(vec![0, 1, 2])
        );
    }

    #[test]
    fn reports_a_cycle_in_data_flow_order() {
        // 0 needs 1, 1 needs 2, 2 needs 0: data flows 0 -> 2 -> 1 -> 0.
        assert_eq!(
            topological_order(&[vec![1], vec![2], vec![0]]),
            Err(Cycle(vec![0, 2, 1, 0]))
        );
        // 0 is stuck behind the cycle 1 <-> 2 but not on it.
        assert_eq!(
            topological_order(&[vec![1], vec![2], vec![1]]),
            Err(Cycle(vec![1, 2, 1]))
        );
    }
}
