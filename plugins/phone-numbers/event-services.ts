/**
 * The event log's background work for one plugin instance: moving events
 * left in user documents to the log (at startup, then periodically),
 * retention, and delivery to `onEvent`. Started when the server is ready,
 * stopped when it closes.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Db } from 'mongodb'
import { setTimeout as sleep } from 'node:timers/promises'
import { startEventDelivery, type DeliveryDocument, type EventDelivery, type EventHandler } from '../../src/domain/event-delivery.js'
import type { PhoneNumberStore } from '../../src/domain/store.js'
import type { EventDeliveryOptions } from './options.js'

const FLUSH_ON_CLOSE_MS = 5000
const RETENTION_CHECK_MS = 60 * 60 * 1000
const DAY_MS = 24 * 60 * 60 * 1000

export interface EventServicesOptions {
  store: PhoneNumberStore
  db: Db
  log: FastifyBaseLogger
  instanceId: string
  sweepIntervalMs: number
  visibilityDelayMs: number
  retentionDays: number | undefined
  onEvent: EventHandler | undefined
  onDeliveryFailure: ((error: unknown, eventId: string | undefined) => void) | undefined
  delivery: EventDeliveryOptions & { collection: string }
}

export interface EventServices {
  /** Events were just logged: deliver them without waiting for the next poll. */
  wake (): void
  stop (): Promise<void>
}

export function startEventServices (options: EventServicesOptions): EventServices {
  const { store, log } = options
  const timers: NodeJS.Timeout[] = []
  let delivery: EventDelivery | undefined

  const sweep = (): void => {
    store.flushPendingEvents().then((users) => {
      if (users > 0) log.info({ users }, 'org-phone-numbers: moved pending events to the log')
    }, (error: unknown) => log.error({ err: error }, 'org-phone-numbers: could not move pending events to the log'))
  }
  sweep()
  timers.push(setInterval(sweep, options.sweepIntervalMs))

  const { retentionDays } = options
  if (retentionDays !== undefined) {
    const expire = (): void => {
      store.expireEvents(new Date(Date.now() - retentionDays * DAY_MS)).catch((error: unknown) =>
        log.error({ err: error }, 'org-phone-numbers: could not delete expired events'))
    }
    expire()
    timers.push(setInterval(expire, RETENTION_CHECK_MS))
  }
  for (const timer of timers) timer.unref()

  if (options.onEvent !== undefined) {
    const { collection, ...tuning } = options.delivery
    delivery = startEventDelivery({
      ...tuning,
      deliveries: options.db.collection<DeliveryDocument>(collection),
      handler: options.onEvent,
      instanceId: options.instanceId,
      visibilityDelayMs: options.visibilityDelayMs,
      onError: (error, event) => {
        log.warn({ err: error, eventId: event?.id }, 'org-phone-numbers: event delivery failed; it will be retried')
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
      await Promise.race([store.eventsFlushed(), sleep(FLUSH_ON_CLOSE_MS, undefined, { ref: false })])
    }
  }
}
