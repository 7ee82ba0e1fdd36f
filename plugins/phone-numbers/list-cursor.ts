/**
 * The listing's opaque cursor: a position in the listing order, bound to the
 * organization and the filters it was issued for, and signed (HMAC-SHA256),
 * so an altered cursor, or one from another organization or other filters,
 * is refused (400) before any database work, never read as a position.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { ObjectId } from 'mongodb'
import { PROVIDERS, type Provider } from '../../src/domain/assignments.js'
import type { ListPosition } from '../../src/domain/listing.js'

/** What a cursor is valid for: the organization and the filters, as given in the request. */
export interface CursorScope {
  organizationId: string
  filters: Readonly<Record<string, string | undefined>>
}

export interface ListCursorCodec {
  encode: (scope: CursorScope, position: ListPosition) => string
  /** The position, or `undefined` when the cursor is not one this codec issued for that scope. */
  decode: (scope: CursorScope, cursor: string) => ListPosition | undefined
}

const VERSION = 1
const MAC_BYTES = 16
const E164 = /^\+[1-9]\d{1,14}$/
const HEX_ID = /^[0-9a-f]{24}$/

/**
 * The signing key: `cursorSecret` when given, else derived from the HMAC
 * token secret (so every process of a deployment agrees), else random for
 * this process (cursors then only work on the process that issued them).
 */
export function cursorKey (cursorSecret: string | Buffer | undefined, tokenSecret: string | Buffer | undefined): Buffer {
  if (cursorSecret !== undefined) return Buffer.from(cursorSecret)
  if (tokenSecret !== undefined) return createHmac('sha256', tokenSecret).update('org-phone-numbers list cursor').digest()
  return randomBytes(32)
}

/** The scope as one string: organization and filters, case-folded where the listing ignores case. */
function scopeText (scope: CursorScope): string {
  const filters = Object.keys(scope.filters).sort().map((name) => [name, scope.filters[name]?.toLowerCase() ?? null])
  return JSON.stringify([scope.organizationId.toLowerCase(), filters])
}

export function createListCursorCodec (key: Buffer): ListCursorCodec {
  function mac (scope: CursorScope, payload: string): Buffer {
    return createHmac('sha256', key).update(scopeText(scope)).update('\n').update(payload).digest().subarray(0, MAC_BYTES)
  }

  function encode (scope: CursorScope, position: ListPosition): string {
    const fields = { v: VERSION, u: position.userId.toHexString(), n: position.phoneNumber, p: position.provider }
    const payload = Buffer.from(JSON.stringify(fields)).toString('base64url')
    return `${payload}.${mac(scope, payload).toString('base64url')}`
  }

  function decode (scope: CursorScope, cursor: string): ListPosition | undefined {
    const [payload, signature, ...rest] = cursor.split('.')
    if (payload === undefined || signature === undefined || rest.length > 0) return undefined
    const given = Buffer.from(signature, 'base64url')
    // Only the canonical spelling: the last base64url character carries unused bits,
    // so several texts decode to one MAC, and an altered cursor must never pass.
    if (given.length !== MAC_BYTES || given.toString('base64url') !== signature || !timingSafeEqual(given, mac(scope, payload))) return undefined
    let fields: unknown
    try {
      fields = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
    } catch {
      return undefined
    }
    // Signed by this codec, so well formed; checked anyway, a key may be shared with older versions.
    const { v, u, n, p } = (fields ?? {}) as Record<string, unknown>
    if (v !== VERSION || typeof u !== 'string' || !HEX_ID.test(u)) return undefined
    if (n === undefined && p === undefined) return { userId: new ObjectId(u) }
    if (typeof n !== 'string' || !E164.test(n) || !PROVIDERS.includes(p as Provider)) return undefined
    return { userId: new ObjectId(u), phoneNumber: n, provider: p as Provider }
  }

  return { encode, decode }
}
