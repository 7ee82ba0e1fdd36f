/**
 * The store's background work: moving events left in user documents to the
 * log (at start, then periodically), retention, and delivery to `onEvent`.
 * The store starts and stops it (`start`, `stop`), so a worker or a script
 * gets it without the plugin.
 */
import type { Collection } from 'mongodb'
import { setTimeout as sleep } from 'node:timers/promises'
import { startEventDelivery, type DeliveryDocument, type EventDelivery, type EventHandler } from './event-delivery.js'
import type { EventDeliveryOptions, StoreLogger } from './store-options.js'

const FLUSH_ON_CLOSE_MS = 5000
const RETENTION_CHECK_MS = 60 * 60 * 1000
const DAY_MS = 24 * 60 * 60 * 1000

/** What the background work does with the store's event log. */
export interface BackgroundTasks {
  flushPendingEvents: () => Promise<number>
  expireEvents: (cutoff: Date) => Promise<number>
  eventsFlushed: () => Promise<void>
}

export interface BackgroundOptions {
  tasks: BackgroundTasks
  log: StoreLogger | undefined
  instanceId: string
  sweepIntervalMs: number
  visibilityDelayMs: number
  retentionDays: number | undefined
  /** Set with `onEvent`: where pending deliveries wait. */
  deliveries: Collection<DeliveryDocument> | undefined
  onEvent: EventHandler | undefined
  onDeliveryFailure: ((error: unknown, eventId: string | undefined) => void) | undefined
  delivery: EventDeliveryOptions | undefined
}

export interface Background {
  /** Events were just logged: deliver them without waiting for the next poll. */
  wake (): void
  stop (): Promise<void>
}

export function startBackground (options: BackgroundOptions): Background {
  const { tasks, log } = options
  const timers: NodeJS.Timeout[] = []
  let delivery: EventDelivery | undefined

  const sweep = (): void => {
    tasks.flushPendingEvents().then((users) => {
      if (users > 0) log?.info({ users }, 'org-phone-numbers: moved pending events to the log')
    }, (error: unknown) => log?.error({ err: error }, 'org-phone-numbers: could not move pending events to the log'))
  }
  sweep()
  timers.push(setInterval(sweep, options.sweepIntervalMs))

  const { retentionDays } = options
  if (retentionDays !== undefined) {
    const expire = (): void => {
      tasks.expireEvents(new Date(Date.now() - retentionDays * DAY_MS)).catch((error: unknown) =>
        log?.error({ err: error }, 'org-phone-numbers: could not delete expired events'))
    }
    expire()
    timers.push(setInterval(expire, RETENTION_CHECK_MS))
  }
  for (const timer of timers) timer.unref()

  if (options.onEvent !== undefined && options.deliveries !== undefined) {
    const { collection, ...tuning } = options.delivery ?? {}
    delivery = startEventDelivery({
      ...tuning,
      deliveries: options.deliveries,
      handler: options.onEvent,
      instanceId: options.instanceId,
      visibilityDelayMs: options.visibilityDelayMs,
      onError: (error, event) => {
        log?.warn({ err: error, eventId: event?.id }, 'org-phone-numbers: event delivery failed; it will be retried')
        options.onDeliveryFailure?.(error, event?.id)
      }
    })
  }

  return {
    wake: () => delivery?.wake(),
    async stop () {
      for (const timer of timers) clearInterval(timer)
      await delivery?.stop()
      // Events recorded by the last requests go to the log before the database closes
      // (if it cannot take them now, they wait in the user documents for the next start).
      await Promise.race([tasks.eventsFlushed(), sleep(FLUSH_ON_CLOSE_MS, undefined, { ref: false })])
    }
  }
}
