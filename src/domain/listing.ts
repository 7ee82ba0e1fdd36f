/**
 * How a listing pages: the filters an entry must meet, the order of entries
 * (the user's slot in the organization's listing directory, then phone
 * number, then provider), and positions in that order. Pure, so the paging
 * rules are tested once; the store reads the documents.
 */
import type { ObjectId } from 'mongodb'
import { isListable, type Provider, type StoredAssignment } from './assignments.js'

export interface ListFilter {
  userId?: ObjectId | undefined
  provider?: Provider | undefined
  /** The number starts with these characters, e.g. `+1416`. */
  phoneNumberPrefix?: string | undefined
  /** Case-insensitive substring of the label. */
  label?: string | undefined
  isInboundEnabled?: boolean | undefined
  isDefault?: boolean | undefined
}

/**
 * A place in the listing order: after the entry (phoneNumber, provider) of
 * the user in directory slot `seq`, or after that whole slot when they are
 * absent (listing-directory.ts).
 */
export interface ListPosition {
  seq: number
  phoneNumber?: string | undefined
  provider?: Provider | undefined
}

/** Whether one stored entry meets every filter. The label is compared as text, never built into a pattern. */
export function matchesFilter (entry: StoredAssignment, filter: ListFilter): boolean {
  if (filter.provider !== undefined && entry.provider !== filter.provider) return false
  if (filter.phoneNumberPrefix !== undefined && !entry.phoneNumber.startsWith(filter.phoneNumberPrefix)) return false
  if (filter.isInboundEnabled !== undefined && entry.isInboundEnabled !== filter.isInboundEnabled) return false
  if (filter.isDefault !== undefined && entry.isDefault !== filter.isDefault) return false
  if (filter.label !== undefined && (entry.label === undefined || !entry.label.toLowerCase().includes(filter.label.toLowerCase()))) return false
  return true
}

function compareText (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** The order of entries within one user: phone number, then provider. */
export function compareEntries (a: StoredAssignment, b: StoredAssignment): number {
  return compareText(a.phoneNumber, b.phoneNumber) || compareText(a.provider, b.provider)
}

/**
 * The entries of one user to list, in order, after `after` when the position
 * is inside this user. Entries other code wrote in another shape are skipped.
 */
export function listableEntries (raw: unknown, filter: ListFilter, after: ListPosition | undefined): StoredAssignment[] {
  const entries = (Array.isArray(raw) ? raw : []).filter((entry): entry is StoredAssignment => isListable(entry) && matchesFilter(entry, filter))
  entries.sort(compareEntries)
  const { phoneNumber, provider } = after ?? {}
  if (phoneNumber === undefined || provider === undefined) return entries
  return entries.filter((entry) => compareEntries(entry, { phoneNumber, provider } as StoredAssignment) > 0)
}
