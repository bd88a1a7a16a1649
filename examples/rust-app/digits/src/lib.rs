//! The sum of the decimal digits of a number.

pub fn digit_sum(text: &str) -> u32 {
    text.chars().filter_map(|c| c.to_digit(10)).sum()
}

#[cfg(test)]
mod tests {
    use super::digit_sum;

    #[test]
    fn sums_only_digits() {
        assert_eq!(digit_sum("1-2-3"), 6);
        assert_eq!(digit_sum(""), 0);
    }
}
