/**
 * Webhook delivery: an event handler that POSTs each event as JSON, signed
 * so the receiver can check it came from us and is fresh.
 *
 *   X-Event-Id:  the event id (de-duplicate on it: delivery is at least once)
 *   X-Timestamp: Unix seconds when this attempt was signed
 *   X-Signature: sha256=<hex HMAC-SHA256 of `${timestamp}.${raw body}` with the secret>
 *
 * Any answer other than 2xx, a network error or no answer in time is a
 * failed attempt, retried by event-delivery.ts.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { PhoneNumberEvent } from '../../schemas/generated/typebox.js'
import type { DeliveryContext, EventHandler } from '../../src/domain/event-delivery.js'

export interface WebhookOptions {
  url: string
  secret: string | Buffer
}

export function signWebhook (secret: string | Buffer, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`
}

export interface WebhookCheck {
  secret: string | Buffer
  /** The raw body as received, before any JSON parsing. */
  body: string
  timestamp: string | undefined
  signature: string | undefined
  /** Oldest signature accepted, in seconds. Default 300. */
  toleranceSeconds?: number
  now?: number
}

/** The receiver's check: a valid signature over this body and timestamp, and a timestamp within the tolerance. */
export function verifyWebhook (check: WebhookCheck): boolean {
  const { timestamp, signature } = check
  if (timestamp === undefined || signature === undefined || !/^\d{1,12}$/.test(timestamp)) return false
  const ageSeconds = (check.now ?? Date.now()) / 1000 - Number(timestamp)
  if (Math.abs(ageSeconds) > (check.toleranceSeconds ?? 300)) return false
  const expected = Buffer.from(signWebhook(check.secret, timestamp, check.body))
  const given = Buffer.from(signature)
  return given.length === expected.length && timingSafeEqual(given, expected)
}

export function createWebhookHandler (options: WebhookOptions): EventHandler {
  const { url, secret } = options
  return async function deliverToWebhook (event: PhoneNumberEvent, { signal }: DeliveryContext): Promise<void> {
    const body = JSON.stringify(event)
    const timestamp = String(Math.floor(Date.now() / 1000))
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-event-id': event.id,
        'x-timestamp': timestamp,
        'x-signature': signWebhook(secret, timestamp, body)
      },
      body,
      signal,
      redirect: 'error'
    })
    // The answer's body is not needed: drop it so the connection is reused.
    await response.body?.cancel()
    if (!response.ok) throw new Error(`webhook answered ${response.status}`)
  }
}
