"""Concurrent, verified paging over `GET /customer-orders` and `GET /products`.

How one listing runs (async httpx, at most `concurrency` requests in flight):

1. Read the first page (offset 0). It gives `total`.
2. Fetch the remaining pages in parallel. Orders are read in ascending id order
   (`order_by=id&direction=ASC`): new orders get larger ids, so inserts land after everything
   already planned and never shift a page. Consecutive pages overlap by one row (offsets
   0, 49, 98, ... with limit 50): with nothing deleted, the last row of one page is the first
   row of the next.
3. Every page proves a closed id range was complete at the moment it was read: from its first
   to its last id, from -inf when it starts at offset 0, to +inf when it is short (the end of
   the list). A deletion before a page's offset shifts the rows left, so the next page starts
   past where the previous one ended: the union of ranges gets a hole. Each hole is re-read
   (bounded) by walking to the page that holds its lower id: start at that id's rank among the
   ids seen, less the shift the latest re-read observed; step back (at least doubling) while a
   page starts past it, forward by a page while a full page ends before it. Once the ranges
   join up from -inf to +inf, any order that existed throughout the listing is in some page,
   whatever was deleted meanwhile.
4. Rows are deduplicated by id across pages (overlaps and shifted re-reads repeat rows).
5. `total` is read again at the end; if fewer unique ids were yielded, orders were added after
   the tail was read: the tail is re-read, then everything once more, and if the numbers still
   disagree `IncompleteListingError` names them.

Products: the contract only says their `order_by` is "whitelisted server-side". The pager asks
for `order_by=id&direction=ASC`; if the server refuses that with a 4xx, or returns ids out of
order, it falls back to plain offset paging without range proofs, and relies on deduplication
plus the `total` check (with full re-reads) alone.

Yielded pages follow completion order, not offset order: each `Page` carries its `offset` and
only the rows not yielded before (so a page may be shorter than the limit). The first page is
always yielded, even when empty, so a consumer always learns `total`.

The sync iterator runs the loop in a background thread and hands pages over through a bounded
queue: at most about `3 * concurrency` pages exist at once, however long the listing.

The pieces, one module each: `pages` (what a listing yields and what a page read holds),
`sender` (async requests with the client's retry rules), `decoding` (the decoder thread beside
the event loop), `coverage` (id-range proofs), `concurrency` (how many requests may be in
flight), `pager` (one listing run) and `bridge` (the background loop behind the sync iterator).
"""

from alter_pipeline.api.paging.bridge import PagerSettings, iter_pages
from alter_pipeline.api.paging.coverage import Coverage, page_span
from alter_pipeline.api.paging.decoding import DECODE_BATCH, DECODE_THREADS
from alter_pipeline.api.paging.pager import PAGES_PER_REQUEST, Pager
from alter_pipeline.api.paging.pages import Decoded, Decoder, FastPage, Listing, Page
from alter_pipeline.api.paging.sender import AsyncSender

__all__ = [
    "DECODE_BATCH",
    "DECODE_THREADS",
    "PAGES_PER_REQUEST",
    "AsyncSender",
    "Coverage",
    "Decoded",
    "Decoder",
    "FastPage",
    "Listing",
    "Page",
    "Pager",
    "PagerSettings",
    "iter_pages",
    "page_span",
]
