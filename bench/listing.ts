/**
 * Preparing the listing scenarios through the server under test: real
 * cursors from the middle of a walk, and probes that each page answers 200
 * with what the scenario claims to measure (a full first page, a filtered
 * page of matching entries only, full middle pages).
 */
import { listingPagePath, type ListingTarget } from './scenarios.js'
import { LISTING_PAGE_LIMIT, SEEDED_NUMBERS_PER_USER, listingPath, meetsListingFilter, type ListingWorkload } from './workload.js'

/** Cursors taken from consecutive pages around the middle of the walk; the middle requests cycle over them. */
export const MIDDLE_CURSORS = 8
/** Page size of the walk to the middle (the limit may change between pages; the cursor does not depend on it). */
export const WALK_LIMIT = 1000

export interface ListedPage {
  phoneNumbers: Array<Record<string, unknown>>
  nextCursor: string | null
}

export interface MiddleWalk extends ListingTarget {
  /** Entries listed before each middle cursor's page: its position in the listing. */
  positions: number[]
  /** Requests the walk took, and how long. */
  pages: number
  milliseconds: number
}

/** GET one listing page; anything but 200 with a listing body throws. */
export async function fetchPage (baseUrl: string, token: string, path: string): Promise<ListedPage> {
  const response = await fetch(`${baseUrl}${path}`, { headers: { authorization: `Bearer ${token}` } })
  const text = await response.text()
  if (response.status !== 200) throw new Error(`GET ${path} answered ${response.status}: ${text.slice(0, 300)}`)
  const body = JSON.parse(text) as Partial<ListedPage>
  if (!Array.isArray(body.phoneNumbers) || (body.nextCursor !== null && typeof body.nextCursor !== 'string')) {
    throw new Error(`GET ${path} answered 200 without a listing: ${text.slice(0, 300)}`)
  }
  return body as ListedPage
}

/**
 * Walks the unfiltered listing from its start, WALK_LIMIT entries a page,
 * up to `count` pages of LISTING_PAGE_LIMIT before the middle, then takes the
 * next `count` cursors, one per LISTING_PAGE_LIMIT page: every middle
 * request's cursor is one the server issued on the way. Unfiltered pages are
 * always full (a page may read `limit + 1000` users, each holding entries),
 * so each cursor's position is known exactly.
 */
export async function walkToMiddle (baseUrl: string, token: string, listing: ListingWorkload, count = MIDDLE_CURSORS): Promise<MiddleWalk> {
  const started = performance.now()
  const total = listing.userIds.length * SEEDED_NUMBERS_PER_USER
  const start = Math.floor(total / 2) - Math.floor(count / 2) * LISTING_PAGE_LIMIT
  if (start <= 0 || start + count * LISTING_PAGE_LIMIT >= total) {
    throw new Error(`a ${listing.userIds.length}-user listing (${total} entries) is too small for ${count} middle pages of ${LISTING_PAGE_LIMIT}`)
  }
  let seen = 0
  let pages = 0
  let cursor: string | undefined
  /** Reads the page at `cursor`, moves the cursor on, answers the entries read. */
  const next = async (limit: number): Promise<number> => {
    const page = await fetchPage(baseUrl, token, listingPath(listing.organizationId, cursor === undefined ? { limit } : { limit, cursor }))
    pages++
    if (page.phoneNumbers.length !== limit) throw new Error(`an unfiltered page of ${limit} held ${page.phoneNumbers.length} entries at position ${seen}`)
    if (page.nextCursor === null) throw new Error(`the listing ended at position ${seen + limit} of ${total}`)
    cursor = page.nextCursor
    return limit
  }
  while (seen < start) seen += await next(Math.min(WALK_LIMIT, start - seen))
  const middleCursors: string[] = []
  const positions: number[] = []
  for (;;) {
    middleCursors.push(cursor!)
    positions.push(seen)
    if (middleCursors.length === count) break
    seen += await next(LISTING_PAGE_LIMIT)
  }
  return { organizationId: listing.organizationId, middleCursors, positions, pages, milliseconds: performance.now() - started }
}

/** Probes each page kind once: 200, full pages, only matching entries on the filtered page. */
export async function probeListing (baseUrl: string, token: string, target: ListingTarget): Promise<void> {
  const first = await fetchPage(baseUrl, token, listingPagePath('first', target.organizationId))
  if (first.phoneNumbers.length !== LISTING_PAGE_LIMIT || first.nextCursor === null) throw new Error(`the first page held ${first.phoneNumbers.length} entries, next ${String(first.nextCursor)}`)
  const filtered = await fetchPage(baseUrl, token, listingPagePath('filtered', target.organizationId))
  if (filtered.phoneNumbers.length === 0) throw new Error('the filtered page is empty')
  if (!filtered.phoneNumbers.every(meetsListingFilter)) throw new Error('the filtered page lists an entry outside the filter')
  for (const cursor of target.middleCursors) {
    const middle = await fetchPage(baseUrl, token, listingPagePath('middle', target.organizationId, cursor))
    if (middle.phoneNumbers.length !== LISTING_PAGE_LIMIT) throw new Error(`a middle page held ${middle.phoneNumbers.length} entries`)
  }
}
