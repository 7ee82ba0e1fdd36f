/**
 * Follows the change log across organizations so that a process hears of the
 * changes other processes made (change-feed.ts), and invalidates the numbers
 * they touched. Every `intervalMs` it reads the events up to now, from
 * `lookbackMs` below the highest position it has read: an event a slow flush
 * inserts late lands at most that far behind (event-log.ts; the store warns
 * when a flush takes longer), so re-reading the window and skipping the ids
 * already seen gives each event once, without waiting out the log's
 * visibility delay.
 *
 * Like a Kubernetes informer after 410 Gone, it starts over (and the cache is
 * dropped through `onRestart`) when it has lost its place: the last event it
 * read is no longer in the log (retention, a trim), or the log holds more new
 * events than it may read in one pass. While no pass has completed for longer
 * than `maxLagMs` (a slow or unreachable database) the cache is bypassed
 * (`isCurrent`), not dropped: the next pass reads on from its place.
 */
import type { ChangeFeed } from './change-feed.js'

export type FollowerRestartReason = 'lost-place' | 'behind'

export interface RouteFollowerOptions {
  feed: Pick<ChangeFeed, 'read' | 'holds'>
  intervalMs: number
  lookbackMs: number
  /** Past this time since the last complete pass the cache is not to be trusted. */
  maxLagMs: number
  /** Events one read asks for; a pass reads at most `maxPagesPerPass` of them. */
  pageSize?: number | undefined
  maxPagesPerPass?: number | undefined
  onChange: (phoneNumber: string) => void
  onRestart: (reason: FollowerRestartReason) => void
  onError: (error: unknown) => void
}

export interface RouteFollower {
  /** Ms since the start of the last complete pass: how old this process's news of other processes' changes may be. */
  lagMs (): number
  /** Whether the last complete pass is recent enough (`maxLagMs`) for the cache to be used. */
  isCurrent (): boolean
  stop (): Promise<void>
}

const DEFAULT_PAGE_SIZE = 1000
const DEFAULT_MAX_PAGES = 20
/** Positions are microseconds (event-outbox.ts). */
const POSITION_PER_MS = 1000

export function startRouteFollower (options: RouteFollowerOptions): RouteFollower {
  const { feed, intervalMs, maxLagMs, onChange, onRestart, onError } = options
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE
  const maxPages = options.maxPagesPerPass ?? DEFAULT_MAX_PAGES
  const lookback = options.lookbackMs * POSITION_PER_MS

  // The process starts with an empty cache: nothing before now matters.
  let highest = Date.now() * POSITION_PER_MS
  /** Ids read within the look-back window, with their positions (to forget them once below it). */
  let seen = new Map<string, number>()
  /** The newest event read: still in the log, or the place is lost. */
  let anchor: string | undefined
  let passedAt = Date.now()
  let stopped = false
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined

  function restart (reason: FollowerRestartReason, startedAt: number): void {
    highest = startedAt * POSITION_PER_MS
    seen = new Map()
    anchor = undefined
    onRestart(reason)
  }

  async function pass (): Promise<void> {
    // A pass after a long gap (a slow or unreachable database) still reads from its place:
    // entries were not answered meanwhile (isCurrent), and the events it reads invalidate what changed.
    const startedAt = Date.now()
    const upTo = startedAt * POSITION_PER_MS
    let from = Math.max(0, highest - lookback)
    // The place is checked in the same round trip as the first read: a pass costs one round trip when little changed.
    const checkedAnchor = anchor
    const [held, firstPage] = await Promise.all([checkedAnchor === undefined ? true : feed.holds(checkedAnchor), feed.read(from, upTo, pageSize)])
    if (!held) {
      restart('lost-place', startedAt)
      passedAt = startedAt
      return
    }
    for (let page = 0; page < maxPages; page++) {
      const events = page === 0 ? firstPage : await feed.read(from, upTo, pageSize)
      for (const event of events) {
        if (seen.has(event._id)) continue
        seen.set(event._id, event.position)
        onChange(event.phoneNumber)
        if (event.position >= highest) {
          highest = event.position
          anchor = event._id
        }
      }
      if (events.length < pageSize) {
        for (const [id, position] of seen) if (position < highest - lookback) seen.delete(id)
        passedAt = startedAt
        return
      }
      // A full page: go on from its last position (ids already seen there are skipped).
      from = events[events.length - 1]!.position
    }
    restart('behind', startedAt)
    passedAt = startedAt
  }

  function schedule (): void {
    if (stopped) return
    timer = setTimeout(() => {
      running = pass().catch(onError).finally(schedule)
    }, intervalMs)
    timer.unref()
  }
  schedule()

  return {
    lagMs: () => Date.now() - passedAt,
    isCurrent: () => Date.now() - passedAt <= maxLagMs,
    async stop () {
      stopped = true
      clearTimeout(timer)
      await running
    }
  }
}
