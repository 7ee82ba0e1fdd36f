/**
 * Shared by the assignments-*.test.ts files (the pure assignment-list rules of
 * src/domain/assignments.ts): fixed dates, stored entries, and deep-frozen
 * input lists with a clone taken before the call.
 */
import type { Provider, StoredAssignment } from '../../src/domain/assignments.js'

export const CREATED = new Date('2024-01-01T00:00:00.000Z')
export const UPDATED = new Date('2024-02-01T00:00:00.000Z')
export const NOW = new Date('2024-03-01T00:00:00.000Z')

export function stored (provider: Provider, phoneNumber: string, extra: Partial<StoredAssignment> = {}): StoredAssignment {
  return {
    provider,
    phoneNumber,
    isDefault: false,
    isInboundEnabled: true,
    createdAt: new Date(CREATED),
    updatedAt: new Date(UPDATED),
    ...extra
  }
}

/** Freezes arrays and plain objects all the way down (Dates are left alone: freezing does not stop setTime). */
export function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}

/** A frozen list, plus a structured clone of it taken before the call, to prove it is unchanged afterwards. */
export function frozenList (entries: unknown[]): { list: readonly StoredAssignment[], snapshot: unknown[] } {
  const snapshot = structuredClone(entries)
  return { list: deepFreeze(entries) as readonly StoredAssignment[], snapshot }
}

/** Entries another program may have written into the same array; ours to keep, not to read or rewrite. */
export function foreign (value: unknown): StoredAssignment {
  return value as StoredAssignment
}

export function entryAt (list: readonly StoredAssignment[] | undefined, index: number): StoredAssignment {
  const entry = list?.[index]
  if (entry === undefined) throw new Error(`no entry at ${index}`)
  return entry
}
