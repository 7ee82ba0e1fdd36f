/**
 * Delivers logged events to a handler (a host's `onEvent`, the standalone
 * server's webhook) at least once, off the request path.
 *
 * The deliveries collection holds one document per event (the outbox flush
 * inserts it next to the log's copy, `_id` = event id, `pending: true`). A
 * delivered one stays for `keepDeliveredMs` as a tombstone, so that a second
 * flush of the same outbox (two processes, a crash between the flush's
 * steps) finds its id taken instead of delivering it again. So pending
 * deliveries survive a restart, and memory holds one bounded window of them,
 * however long a receiver stays down.
 *
 * Like the log (event-log.ts), delivery only considers events at least
 * `visibilityDelayMs` old: positions come from the flushing processes'
 * clocks, and an event inserted late must not be overtaken by a later one
 * of its number.
 *
 * - Order: per phone number, only its oldest pending event is ever
 *   attempted; the next waits until it is delivered (or given up).
 * - Sharing: an attempt first takes a lease on its document (a
 *   compare-and-swap on the lease token), and gives up the handler's wait
 *   at half the lease, so no event is handled by two processes at once; a
 *   process that dies mid-delivery leaves a lease the others take over once
 *   it runs out.
 * - Retries: exponential backoff with full jitter, up to `maxAttempts`;
 *   then the document stays, marked failed, for an operator to inspect.
 */
import { randomUUID } from 'node:crypto'
import type { Collection } from 'mongodb'
import type { PhoneNumberEvent } from '../../schemas/generated/typebox.js'
import { toEventJson, type LoggedEvent } from './change-events.js'

export interface DeliveryState {
  /** Set on insert; removed once delivered or given up. */
  pending?: true
  deliveredAt?: Date
  attempts?: number
  nextAttemptAt?: Date
  leaseToken?: string | null
  leaseUntil?: Date | null
  leasedBy?: string | null
  lastError?: string
  failedAt?: Date
}

export type DeliveryDocument = LoggedEvent & DeliveryState

/** What a handler gets besides the event. */
export interface DeliveryContext {
  /** Aborted when this attempt's time is up (half the lease): stop then, the event will be retried. */
  signal: AbortSignal
  /** 1 for the first attempt. */
  attempt: number
}

export type EventHandler = (event: PhoneNumberEvent, context: DeliveryContext) => void | Promise<void>

export interface EventDeliveryOptions {
  deliveries: Collection<DeliveryDocument>
  handler: EventHandler
  instanceId: string
  /** How long an attempt owns its event. Default 30000 ms. */
  leaseMs?: number | undefined
  /** Attempts running at once (different numbers). Default 8. */
  concurrency?: number | undefined
  /** How often the collection is read for retries and other processes' events. Default 1000 ms. */
  pollIntervalMs?: number | undefined
  /** Default 25. */
  maxAttempts?: number | undefined
  /** First retry pause; it doubles per attempt up to `retryMaxMs`. Default 1000 ms. */
  retryBaseMs?: number | undefined
  /** Default 300000 ms. */
  retryMaxMs?: number | undefined
  /** A failed attempt (with its event) or a failed read of the deliveries (without). */
  onError?: ((error: unknown, event?: PhoneNumberEvent) => void) | undefined
  /** Only events at least this old are delivered (see above). Default 1000 ms. */
  visibilityDelayMs?: number | undefined
  /** How long a delivered event's document stays, to refuse a second insert of it. Default 900000 ms (15 min). */
  keepDeliveredMs?: number | undefined
}

export interface EventDelivery {
  /** Look for deliveries now (events were just logged). */
  wake (): void
  /** Stops polling and waits for the attempts in flight. */
  stop (): Promise<void>
}

/** Pending documents read per pass: the memory bound, whatever the backlog. */
const WINDOW = 200
const PURGE_INTERVAL_MS = 60_000

/** Full jitter: anywhere up to the capped exponential pause, so retries of many events spread out. */
export function retryPauseMs (attempt: number, baseMs: number, maxMs: number): number {
  return Math.random() * Math.min(maxMs, baseMs * 2 ** (attempt - 1))
}

/** Longest error text kept on a delivery document. */
const ERROR_TEXT_LENGTH = 1000

function describe (error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, ERROR_TEXT_LENGTH)
}

export function startEventDelivery (options: EventDeliveryOptions): EventDelivery {
  const { deliveries, handler, instanceId } = options
  const leaseMs = options.leaseMs ?? 30_000
  const concurrency = options.concurrency ?? 8
  const pollIntervalMs = options.pollIntervalMs ?? 1000
  const maxAttempts = options.maxAttempts ?? 25
  const retryBaseMs = options.retryBaseMs ?? 1000
  const retryMaxMs = options.retryMaxMs ?? 300_000
  const visibilityDelayMs = options.visibilityDelayMs ?? 1000
  const keepDeliveredMs = options.keepDeliveredMs ?? 900_000
  let lastPurge = 0
  const inFlight = new Map<string, Promise<void>>()
  let stopped = false
  const stopping = new AbortController()
  let passRunning = false
  let passAgain = false
  const timer = setInterval(wake, pollIntervalMs)
  timer.unref()

  function wake (): void {
    if (stopped) return
    if (passRunning) {
      passAgain = true
      return
    }
    passRunning = true
    pass().catch((error: unknown) => options.onError?.(error)).finally(() => {
      passRunning = false
      if (passAgain) {
        passAgain = false
        wake()
      }
    })
  }

  /** One read of the window: start an attempt for each number whose oldest pending event is due and free. */
  async function pass (): Promise<void> {
    if (Date.now() - lastPurge > PURGE_INTERVAL_MS) {
      lastPurge = Date.now()
      await deliveries.deleteMany({ deliveredAt: { $lt: new Date(lastPurge - keepDeliveredMs) } })
    }
    if (inFlight.size >= concurrency) return
    const horizon = (Date.now() - visibilityDelayMs) * 1000
    const window = await deliveries.find({ pending: true, position: { $lte: horizon } }, { sort: { position: 1, _id: 1 }, limit: WINDOW }).toArray()
    const now = Date.now()
    const numbersSeen = new Set<string>()
    for (const delivery of window) {
      if (stopped || inFlight.size >= concurrency) return
      if (numbersSeen.has(delivery.phoneNumber)) continue
      numbersSeen.add(delivery.phoneNumber)
      if (inFlight.has(delivery._id)) continue
      if (delivery.nextAttemptAt !== undefined && delivery.nextAttemptAt.getTime() > now) continue
      if (delivery.leaseUntil != null && delivery.leaseUntil.getTime() > now) continue
      const attempt = attemptDelivery(delivery).finally(() => {
        inFlight.delete(delivery._id)
        wake()
      })
      inFlight.set(delivery._id, attempt)
    }
  }

  async function attemptDelivery (seen: DeliveryDocument): Promise<void> {
    const token = randomUUID()
    const leased = await deliveries.findOneAndUpdate(
      { _id: seen._id, leaseToken: { $eq: seen.leaseToken ?? null }, pending: true },
      { $set: { leaseToken: token, leaseUntil: new Date(Date.now() + leaseMs), leasedBy: instanceId }, $inc: { attempts: 1 } },
      { returnDocument: 'after' }
    )
    if (leased === null) return // another process took it first
    const event = toEventJson(leased)
    const attempt = leased.attempts ?? 1
    const mine = { _id: leased._id, leaseToken: token }
    try {
      await withinTime(async (signal) => await handler(event, { signal, attempt }), leaseMs / 2, stopping.signal)
      await deliveries.updateOne(mine, { $set: { deliveredAt: new Date() }, $unset: { pending: '', leaseToken: '', leaseUntil: '', leasedBy: '' } })
    } catch (error) {
      options.onError?.(error, event)
      const giveUp = attempt >= maxAttempts
      const state = {
        leaseToken: null,
        leaseUntil: null,
        lastError: describe(error),
        nextAttemptAt: new Date(Date.now() + retryPauseMs(attempt, retryBaseMs, retryMaxMs))
      }
      // Given up: no longer pending (the number's next events go on), kept for an operator.
      await deliveries.updateOne(mine, giveUp ? { $set: { ...state, failedAt: new Date() }, $unset: { pending: '' } } : { $set: state })
    }
  }

  async function stop (): Promise<void> {
    stopped = true
    clearInterval(timer)
    // Attempts in flight end now as failures (their leases released, retried after the restart), not when their time is up.
    stopping.abort(new Error('the server is shutting down'))
    await Promise.allSettled([...inFlight.values()])
  }

  wake()
  return { wake, stop }
}

/** Runs `task` with a signal aborted after `ms` (or when `stop` aborts), and stops waiting for it then. */
async function withinTime (task: (signal: AbortSignal) => Promise<void>, ms: number, stop: AbortSignal): Promise<void> {
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  let onStop: (() => void) | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    const end = (error: Error): void => {
      controller.abort(error)
      reject(error)
    }
    timer = setTimeout(() => end(new Error(`no answer within ${ms} ms`)), ms)
    onStop = () => end(stop.reason instanceof Error ? stop.reason : new Error('stopped'))
    if (stop.aborted) onStop()
    else stop.addEventListener('abort', onStop, { once: true })
  })
  try {
    await Promise.race([task(controller.signal), timeout])
  } finally {
    if (onStop !== undefined) stop.removeEventListener('abort', onStop)
    clearTimeout(timer)
  }
}
