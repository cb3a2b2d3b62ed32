//! Paging and filtering for `secrets.list` and `versions.list`.
//!
//! Page tokens are keyset tokens: each names the sort key of the last item returned, so a
//! resource created or deleted between two calls does not shift later pages. A token is bound
//! to the filter it was issued for.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ApiError;
use crate::filter::{Filter, Filterable};

/// The cap on `pageSize` from the Secret Manager reference.
pub const MAX_PAGE_SIZE: usize = 25_000;
/// The page size used when a request sends `pageSize` 0 or none.
// NOTE: Google's reference states only that the server decides for 0. Returning up to the cap
// means that a client which ignores nextPageToken works here but may fail against Google.
pub const DEFAULT_PAGE_SIZE: usize = MAX_PAGE_SIZE;

/// The paging and filter parameters of a list request.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub page_size: i32,
    pub page_token: String,
    /// The filter as sent, which page tokens are bound to.
    pub filter_text: String,
    pub filter: Option<Filter>,
}

/// One page of results. `total_size` counts all items, and is 0 when a filter is set.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
    pub total_size: i32,
}

/// Returns the page that `request` selects from `sorted`, which must be in strictly
/// descending order of `key`.
pub fn paginate<T: Filterable + Clone>(
    sorted: Vec<&T>,
    request: &PageRequest,
    key: impl Fn(&T) -> u64,
) -> Result<Page<T>, ApiError> {
    let page_size = match request.page_size {
        size if size < 0 => {
            return Err(ApiError::invalid_argument(format!(
                "pageSize {size} is negative. Use 0 for the default or a positive number."
            )));
        }
        0 => DEFAULT_PAGE_SIZE,
        size => (size as usize).min(MAX_PAGE_SIZE),
    };
    let total_size = match request.filter {
        Some(_) => 0,
        None => i32::try_from(sorted.len()).unwrap_or(i32::MAX),
    };
    let after_key = match request.page_token.as_str() {
        "" => None,
        token => Some(decode_token(token, &request.filter_text)?),
    };

    let mut remaining = sorted
        .into_iter()
        .filter(|item| after_key.is_none_or(|after| key(item) < after))
        .filter(|item| request.filter.as_ref().is_none_or(|filter| filter.matches(*item)));
    let items: Vec<T> = remaining.by_ref().take(page_size).cloned().collect();
    let next_page_token = match (remaining.next(), items.last()) {
        (Some(_), Some(last)) => encode_token(key(last), &request.filter_text),
        _ => String::new(),
    };
    Ok(Page {
        items,
        next_page_token,
        total_size,
    })
}

fn encode_token(last_key: u64, filter_text: &str) -> String {
    let filter_checksum = crate::checksum::crc32c(filter_text.as_bytes());
    URL_SAFE_NO_PAD.encode(format!("{last_key}.{filter_checksum:08x}"))
}

fn decode_token(token: &str, filter_text: &str) -> Result<u64, ApiError> {
    let invalid = || {
        ApiError::invalid_argument(format!(
            "invalid pageToken {token:?}: pass the nextPageToken of the previous response unchanged, \
             with the same filter"
        ))
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (key, checksum) = text.split_once('.').ok_or_else(invalid)?;
    let expected_checksum = format!("{:08x}", crate::checksum::crc32c(filter_text.as_bytes()));
    if checksum != expected_checksum {
        return Err(invalid());
    }
    key.parse().map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{Field, FieldValue, ResourceKind};

    #[derive(Debug, Clone, PartialEq)]
    struct Item(u64);

    impl Filterable for Item {
        fn field_value(&self, field: &Field) -> FieldValue<'_> {
            match field {
                Field::Name if self.0.is_multiple_of(2) => FieldValue::Texts(vec!["even"]),
                Field::Name => FieldValue::Texts(vec!["odd"]),
                _ => FieldValue::Texts(Vec::new()),
            }
        }
    }

    fn items(count: u64) -> Vec<Item> {
        (1..=count).rev().map(Item).collect()
    }

    fn request(page_size: i32, page_token: &str, filter: &str) -> PageRequest {
        PageRequest {
            page_size,
            page_token: page_token.to_string(),
            filter_text: filter.to_string(),
            filter: Filter::parse(filter, ResourceKind::SecretVersion).expect("valid filter"),
        }
    }

    #[test]
    fn pages_walk_all_items_once() {
        let all = items(5);
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = paginate(all.iter().collect(), &request(2, &token, ""), |item| item.0).expect("page");
            assert!(page.items.len() <= 2);
            assert_eq!(page.total_size, 5);
            seen.extend(page.items.iter().map(|item| item.0));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(seen, vec![5, 4, 3, 2, 1]);
    }

    #[test]
    fn last_full_page_has_no_token() {
        let all = items(4);
        let page = paginate(all.iter().collect(), &request(4, "", ""), |item| item.0).expect("page");
        assert_eq!(page.items.len(), 4);
        assert_eq!(page.next_page_token, "");
    }

    #[test]
    fn filter_applies_before_paging() {
        let all = items(6);
        let first = paginate(all.iter().collect(), &request(2, "", "name=even"), |item| item.0).expect("page");
        assert_eq!(first.items, vec![Item(6), Item(4)]);
        assert_eq!(first.total_size, 0);
        let second = paginate(
            all.iter().collect(),
            &request(2, &first.next_page_token, "name=even"),
            |item| item.0,
        )
        .expect("page");
        assert_eq!(second.items, vec![Item(2)]);
        assert_eq!(second.next_page_token, "");
    }

    #[test]
    fn token_is_bound_to_filter() {
        let all = items(6);
        let first = paginate(all.iter().collect(), &request(2, "", "name=even"), |item| item.0).expect("page");
        let error = paginate(all.iter().collect(), &request(2, &first.next_page_token, ""), |item| {
            item.0
        })
        .expect_err("token reused without its filter");
        assert_eq!(error.code, crate::error::Code::InvalidArgument);
    }

    #[test]
    fn malformed_token_and_negative_size_fail() {
        let all = items(2);
        assert!(paginate(all.iter().collect(), &request(1, "not-a-token", ""), |item| item.0).is_err());
        assert!(paginate(all.iter().collect(), &request(-1, "", ""), |item| item.0).is_err());
    }
}
