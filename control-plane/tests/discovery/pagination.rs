//! Pagination and limits.

use super::*;

#[tokio::test]
async fn every_page_is_read() {
    let pager = Pager::new(numbered_tools(7), 2, Paging::Normal);
    let server = pager_server(pager.clone(), false).await;
    let tools = discover(&server.url, &Credential::None, WAIT)
        .await
        .unwrap();
    let got: Vec<&str> = tools.iter().map(|t| t.name()).collect();
    let want: Vec<String> = (0..7).map(|i| format!("tool_{i:05}")).collect();
    assert_eq!(got, want);
    assert_eq!(pager.calls(), 4, "7 tools at 2 per page are 4 pages");
}

#[tokio::test]
async fn more_pages_than_the_limit_fail() {
    let pager = Pager::new(numbered_tools(2 * MAX_PAGES + 1), 2, Paging::Normal);
    let server = pager_server(pager.clone(), false).await;
    let error = discover(&server.url, &Credential::None, WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoveryError::TooManyPages { limit, .. } if limit == MAX_PAGES),
        "{error:?}"
    );
    assert_eq!(pager.calls(), MAX_PAGES);

    // Exactly the limit is fine.
    let pager = Pager::new(numbered_tools(2 * MAX_PAGES), 2, Paging::Normal);
    let server = pager_server(pager.clone(), false).await;
    let tools = discover(&server.url, &Credential::None, WAIT)
        .await
        .unwrap();
    assert_eq!(tools.len(), 2 * MAX_PAGES);
    assert_eq!(pager.calls(), MAX_PAGES);
}

#[tokio::test]
async fn more_tools_than_the_limit_fail() {
    let pager = Pager::new(numbered_tools(MAX_TOOLS + 1), MAX_TOOLS + 1, Paging::Normal);
    let server = pager_server(pager, false).await;
    let error = discover(&server.url, &Credential::None, WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoveryError::TooManyTools { limit, .. } if limit == MAX_TOOLS),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_cursor_loop_fails() {
    let pager = Pager::new(numbered_tools(6), 2, Paging::Loop);
    let server = pager_server(pager.clone(), false).await;
    let error = discover(&server.url, &Credential::None, WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoveryError::CursorLoop { .. }),
        "{error:?}"
    );
    assert_eq!(pager.calls(), 2);
}

#[tokio::test]
async fn a_name_offered_twice_fails() {
    let mut tools = numbered_tools(3);
    tools.push(tool("tool_00001", "Another tool with the same name"));
    let server = pager_server(Pager::new(tools, 2, Paging::Normal), false).await;
    let error = discover(&server.url, &Credential::None, WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DiscoveryError::DuplicateTool { name, .. } if name == "tool_00001"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_stalled_server_times_out() {
    let server = pager_server(Pager::new(numbered_tools(1), 2, Paging::Stall), false).await;
    let started = Instant::now();
    let error = discover(&server.url, &Credential::None, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(error, DiscoveryError::Timeout { .. }), "{error:?}");
    assert!(
        error.to_string().contains("timed out after 300ms"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}
