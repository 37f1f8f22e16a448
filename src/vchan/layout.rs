//! Where a vchan's rings live, and which orders a peer may announce.

use crate::abi::vchan::*;

/// The orders a peer announced cannot describe a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// An order outside 10..=20.
    BadOrder(u16),
    /// Both rings are in the control page at the same offset.
    Overlap(u16),
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LayoutError::BadOrder(o) => write!(f, "ring order {o} is outside 10..=20"),
            LayoutError::Overlap(o) => {
                write!(
                    f,
                    "both rings of order {o} would share the control page's one slot"
                )
            }
        }
    }
}

/// The in-page offset of a ring of `order`, or `None` if it is made of
/// separate granted pages (orders 12 and up).
pub fn ring_offset(order: u16) -> Option<usize> {
    match order {
        SMALL_RING_ORDER => Some(SMALL_RING_OFFSET),
        LARGE_RING_ORDER => Some(LARGE_RING_OFFSET),
        _ => None,
    }
}

/// Number of granted pages a ring of `order` needs (0 for in-page rings).
pub fn ring_pages(order: u16) -> usize {
    if order <= LARGE_RING_ORDER {
        0
    } else {
        1 << (order - 12)
    }
}

/// Checks a (left, right) order pair as libxenvchan's client must:
/// both within 10..=20 and not sharing an in-page slot.
pub fn validate_orders(left: u16, right: u16) -> Result<(), LayoutError> {
    for o in [left, right] {
        if !(SMALL_RING_ORDER..=MAX_RING_ORDER).contains(&o) {
            return Err(LayoutError::BadOrder(o));
        }
    }
    if left == right && ring_offset(left).is_some() {
        return Err(LayoutError::Overlap(left));
    }
    Ok(())
}

/// The orders a server picks for rings of at least `left_min` and
/// `right_min` bytes, as libxenvchan's `libxenvchan_server_init` does:
/// whole pages by default, and the control page's two free slots (1 KiB
/// at 1024, 2 KiB at 2048) whenever the sizes allow.
pub fn choose_orders(left_min: usize, right_min: usize) -> Result<(u16, u16), LayoutError> {
    const SMALL: usize = 1 << SMALL_RING_ORDER;
    const LARGE: usize = 1 << LARGE_RING_ORDER;
    fn pages_order(min: usize) -> Result<u16, LayoutError> {
        // The smallest power of two >= min; past the largest one a usize
        // holds, that is 2^usize::BITS (a caller's value, not a panic or a
        // wrapped order).
        let bits = min
            .max(1)
            .checked_next_power_of_two()
            .map_or(usize::BITS, usize::trailing_zeros);
        let order = bits.max(12) as u16;
        if order > MAX_RING_ORDER {
            return Err(LayoutError::BadOrder(order));
        }
        Ok(order)
    }
    let (l, r) = (pages_order(left_min)?, pages_order(right_min)?);
    let orders = if left_min <= SMALL && right_min <= LARGE {
        (SMALL_RING_ORDER, LARGE_RING_ORDER)
    } else if left_min <= LARGE && right_min <= SMALL {
        (LARGE_RING_ORDER, SMALL_RING_ORDER)
    } else if left_min <= LARGE {
        (LARGE_RING_ORDER, r)
    } else if right_min <= LARGE {
        (l, LARGE_RING_ORDER)
    } else {
        (l, r)
    };
    validate_orders(orders.0, orders.1)?;
    Ok(orders)
}

/// Grant slots the control page has room for after the header.
pub const MAX_GRANTS: usize = (crate::abi::PAGE_SIZE - GRANTS) / 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_checked() {
        assert_eq!(validate_orders(10, 11), Ok(()));
        assert_eq!(validate_orders(11, 10), Ok(()));
        assert_eq!(validate_orders(12, 12), Ok(()));
        assert_eq!(validate_orders(20, 20), Ok(()));
        assert_eq!(validate_orders(10, 10), Err(LayoutError::Overlap(10)));
        assert_eq!(validate_orders(11, 11), Err(LayoutError::Overlap(11)));
        assert_eq!(validate_orders(9, 12), Err(LayoutError::BadOrder(9)));
        assert_eq!(validate_orders(12, 21), Err(LayoutError::BadOrder(21)));
        assert_eq!(
            validate_orders(0xffff, 12),
            Err(LayoutError::BadOrder(0xffff))
        );
    }

    #[test]
    fn servers_choose_like_libxenvchan() {
        assert_eq!(choose_orders(1, 1), Ok((10, 11)));
        assert_eq!(choose_orders(1024, 2048), Ok((10, 11)));
        assert_eq!(choose_orders(2048, 1000), Ok((11, 10)));
        assert_eq!(choose_orders(2048, 2048), Ok((11, 12)));
        assert_eq!(choose_orders(4096, 2048), Ok((12, 11)));
        assert_eq!(choose_orders(4097, 4096), Ok((13, 12)));
        assert_eq!(choose_orders(65536, 1 << 20), Ok((16, 20)));
        assert_eq!(
            choose_orders((1 << 20) + 1, 10),
            Err(LayoutError::BadOrder(21))
        );
        // Sizes past the largest power of two a usize holds would need
        // order 64: refused like any other order above 20, no overflow.
        assert_eq!(choose_orders(usize::MAX, 1), Err(LayoutError::BadOrder(64)));
        assert_eq!(
            choose_orders(1, (1 << 63) + 1),
            Err(LayoutError::BadOrder(64))
        );
        assert_eq!(choose_orders(1 << 63, 1), Err(LayoutError::BadOrder(63)));
        // Two order-20 rings' grants fit the control page.
        assert!(ring_pages(20) * 2 <= MAX_GRANTS);
        assert_eq!(ring_pages(12), 1);
        assert_eq!(ring_pages(11), 0);
    }
}
