/**
 * The phone-number assignments held by one user, and the pure list logic that
 * keeps them consistent. Nothing here knows about HTTP or the database, so the
 * rules (one entry per key, at most one default per provider) are tested once.
 */
import type { Static } from '@sinclair/typebox'
import { OrgAssignPhoneNumberRequest } from '../../schemas/generated/typebox.js'

/** The contract's provider enum, one source: schemas/openapi.yaml through the generated schema. */
export type Provider = Static<typeof OrgAssignPhoneNumberRequest.properties.provider>
export const PROVIDERS: readonly Provider[] = Object.freeze([...(OrgAssignPhoneNumberRequest.properties.provider as unknown as { enum: Provider[] }).enum])

/** One entry of `users.<field>` as stored. */
export interface StoredAssignment {
  provider: Provider
  phoneNumber: string
  isDefault: boolean
  isInboundEnabled: boolean
  label?: string
  createdAt: Date
  updatedAt: Date
}

/** What a caller asks for; omitted flags mean `true`, an omitted label means none. */
export interface AssignmentInput {
  provider: Provider
  phoneNumber: string
  isDefault?: boolean | undefined
  isInboundEnabled?: boolean | undefined
  label?: string | undefined
}

export interface AssignmentKey {
  provider: Provider
  phoneNumber: string
}

export interface UpsertOutcome {
  /** The whole list to store, or `undefined` when the stored list already matches the request. */
  next: StoredAssignment[] | undefined
  /** The entry as it is (or will be) stored. */
  assignment: StoredAssignment
}

function isSameKey (entry: AssignmentKey, key: AssignmentKey): boolean {
  return entry.phoneNumber === key.phoneNumber && entry.provider === key.provider
}

/**
 * Adds the (provider, phoneNumber) entry or updates it in place, clearing the
 * other defaults of that provider when the entry becomes the default.
 * Returns `next: undefined` when nothing would change, so a repeated request
 * costs no write and leaves `updatedAt` alone.
 */
export function upsertAssignment (current: readonly StoredAssignment[], input: AssignmentInput, now: Date): UpsertOutcome {
  const isDefault = input.isDefault ?? true
  const isInboundEnabled = input.isInboundEnabled ?? true
  const label = input.label

  const index = current.findIndex((entry) => isSameKey(entry, input))
  const existing = index === -1 ? undefined : current[index]
  const entryUnchanged = existing !== undefined &&
    existing.isDefault === isDefault &&
    existing.isInboundEnabled === isInboundEnabled &&
    existing.label === label
  const otherDefaultToClear = isDefault && current.some((entry, i) => i !== index && entry.isDefault && entry.provider === input.provider)

  if (existing !== undefined && entryUnchanged && !otherDefaultToClear) {
    return { next: undefined, assignment: existing }
  }

  const assignment: StoredAssignment = {
    provider: input.provider,
    phoneNumber: input.phoneNumber,
    isDefault,
    isInboundEnabled,
    ...(label === undefined ? {} : { label }),
    createdAt: existing?.createdAt ?? now,
    updatedAt: now
  }

  const next = current.map((entry, i) => {
    if (i === index) return assignment
    if (otherDefaultToClear && entry.isDefault && entry.provider === input.provider) {
      return { ...entry, isDefault: false, updatedAt: now }
    }
    return entry
  })
  if (index === -1) next.push(assignment)
  return { next, assignment }
}

/** The list without the entry of that key; `undefined` when the user does not hold it. */
export function removeAssignment (current: readonly StoredAssignment[], key: AssignmentKey): StoredAssignment[] | undefined {
  const index = current.findIndex((entry) => isSameKey(entry, key))
  if (index === -1) return undefined
  return current.filter((_, i) => i !== index)
}

/**
 * Reads the stored array defensively: documents written by other code may
 * lack the field or hold entries of another shape, which are kept untouched
 * in place rather than dropped (they are not ours to delete).
 */
export function readAssignments (raw: unknown): StoredAssignment[] {
  return Array.isArray(raw) ? raw as StoredAssignment[] : []
}
