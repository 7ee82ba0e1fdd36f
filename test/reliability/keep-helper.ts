/**
 * Shared by the keep-* tests (what the security review found held and must
 * keep holding): the contract's error shape and how to check an answer
 * against it, hand-signed HS256 tokens, and a seeded PRNG.
 */
import { createHmac } from 'node:crypto'
import type { Test } from 'tap'
import { settledSnapshot, TEST_SECRET } from '../helper.js'

/** The contract's `error` titles, written out here rather than imported from the plugin. */
const TITLES: Record<number, string> = {
  400: 'Validation error',
  401: 'Unauthorized',
  403: 'Forbidden',
  413: 'Payload too large',
  415: 'Unsupported media type',
  500: 'Internal server error'
}

/** A JavaScript or Node stack frame, a source location, or a serialized `stack`. */
export const STACK_TRACE = /\n\s*at |\bat (?:async )?\S+ \(|node:internal|node_modules|\.[cm]?[jt]s:\d+|"stack"/

export const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
export const nowSeconds = (): number => Math.floor(Date.now() / 1000)

/** HS256 over exactly these header and payload texts (raw JSON, so 1e400 or duplicate keys survive). */
export function signText (header: string, payload: string, key: string = TEST_SECRET): string {
  const unsigned = `${b64(header)}.${b64(payload)}`
  return `${unsigned}.${createHmac('sha256', key).update(unsigned).digest('base64url')}`
}

export const snapshot = settledSnapshot

/** Why an answer is not the contract's `{ error, details }` with one of `allowed` and no stack, or undefined. */
export function contractProblem (status: number, text: string, allowed: readonly number[]): string | undefined {
  if (!allowed.includes(status)) return `status ${status}, expected ${allowed.join('/')}`
  if (STACK_TRACE.test(text)) return 'a stack trace in the body'
  let body: unknown
  try { body = JSON.parse(text) } catch { return 'not JSON' }
  if (typeof body !== 'object' || body === null) return 'not an object'
  const keys = Object.keys(body).sort().join(',')
  if (keys !== 'details,error') return `keys ${keys}`
  const { error, details } = body as Record<string, unknown>
  if (typeof details !== 'string' || details === '') return 'details is not a non-empty string'
  if (TITLES[status] !== undefined && error !== TITLES[status]) return `error ${JSON.stringify(error)} for ${status}`
  return undefined
}

export function assertContractError (t: Test, name: string, response: { statusCode: number, body: string }, allowed: readonly number[]): void {
  const problem = contractProblem(response.statusCode, response.body, allowed)
  t.equal(problem, undefined, `${name}: ${response.statusCode} ${response.body.slice(0, 160)}`)
}

/** Seeded PRNG (mulberry32): the fuzzed tokens are the same on every run. */
export function prng (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6D2B79F5) >>> 0
    let x = Math.imul(state ^ (state >>> 15), 1 | state)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
