/**
 * Change events: one per changed assignment, computed from a user's array
 * before and after a write. Pure, so what counts as a change is decided (and
 * tested) in one place; the store carries the events in the same write as the
 * change (event-outbox.ts moves them to the log).
 */
import { ObjectId } from 'mongodb'
import type { PhoneNumberAssignment, PhoneNumberEvent } from '../../schemas/generated/typebox.js'
import { isOurs, readDate, type Provider, type StoredAssignment } from './assignments.js'

export type ChangeType = PhoneNumberEvent['type']

/** Who made a change: the verified token's subject and role. */
export interface ChangeActor {
  sub: string | null
  role: string | null
}

/** What the store records about the caller of a change; everything is optional for calls made from code. */
export interface ChangeContext {
  actor?: ChangeActor | null | undefined
  requestId?: string | null | undefined
}

/**
 * An event as stored: in a user's outbox field, then in the events
 * collection (which adds its place in the log). No field is ever `undefined`,
 * so the document read back equals the one written (the outbox is cleared by
 * exact match).
 */
export interface StoredEvent {
  _id: string
  type: ChangeType
  at: Date
  organizationId: ObjectId
  userId: ObjectId
  fromUserId?: ObjectId
  provider: Provider
  phoneNumber: string
  before: StoredAssignment | null
  after: StoredAssignment | null
  actor: ChangeActor | null
  requestId: string | null
}

/** An event in the log: its place is `position` (see event-log.ts). */
export interface LoggedEvent extends StoredEvent {
  position: number
  recordedAt: Date
}

interface Change { type: ChangeType, before: StoredAssignment | null, after: StoredAssignment | null }

function keyOf (entry: Record<string, unknown>): string {
  return `${String(entry['provider'])}\u0000${String(entry['phoneNumber'])}`
}

/** Our entries by key (the first of a key, as findEntry reads them); other code's entries are not ours to report. */
function entriesByKey (array: readonly unknown[]): Map<string, StoredAssignment> {
  const byKey = new Map<string, StoredAssignment>()
  for (const entry of array) {
    if (isOurs(entry) && !byKey.has(keyOf(entry))) byKey.set(keyOf(entry), entry as unknown as StoredAssignment)
  }
  return byKey
}

/**
 * The changes a write makes: new keys are `assigned`, entries the write
 * replaced are `updated`, keys that are gone are `removed`. The pure list
 * functions keep untouched entries as the same objects, so identity tells
 * what changed.
 */
export function changesBetween (current: readonly unknown[], next: readonly unknown[]): Change[] {
  const before = entriesByKey(current)
  const after = entriesByKey(next)
  const changes: Change[] = []
  for (const [key, entry] of after) {
    const previous = before.get(key)
    if (previous === undefined) changes.push({ type: 'assigned', before: null, after: entry })
    else if (previous !== entry) changes.push({ type: 'updated', before: previous, after: entry })
  }
  for (const [key, entry] of before) {
    if (!after.has(key)) changes.push({ type: 'removed', before: entry, after: null })
  }
  return changes
}

/** The fields of one user write that every event of it shares. */
export interface EventScope extends ChangeContext {
  organizationId: ObjectId
  userId: ObjectId
  at: Date
}

/** A snapshot of an entry, without the fields other code may have added to it. */
function snapshot (entry: StoredAssignment | null, at: Date): StoredAssignment | null {
  if (entry === null) return null
  const label = typeof entry.label === 'string' ? entry.label : undefined
  return {
    provider: entry.provider,
    phoneNumber: entry.phoneNumber,
    isDefault: entry.isDefault === true,
    isInboundEnabled: entry.isInboundEnabled === true,
    ...(label === undefined ? {} : { label }),
    // Other code may have stored dates we cannot read: the change time stands in.
    createdAt: readDate(entry.createdAt) ?? at,
    updatedAt: readDate(entry.updatedAt) ?? at
  }
}

export function createEvent (scope: EventScope, change: Change & { fromUserId?: ObjectId | undefined }): StoredEvent {
  const subject = change.after ?? change.before!
  return {
    _id: new ObjectId().toHexString(),
    type: change.type,
    at: scope.at,
    organizationId: scope.organizationId,
    userId: scope.userId,
    ...(change.fromUserId === undefined ? {} : { fromUserId: change.fromUserId }),
    provider: subject.provider,
    phoneNumber: subject.phoneNumber,
    before: snapshot(change.before, scope.at),
    after: snapshot(change.after, scope.at),
    actor: scope.actor ?? null,
    requestId: scope.requestId ?? null
  }
}

/** One event per assignment a write changes, in the array's order (removals last). */
export function eventsBetween (scope: EventScope, current: readonly unknown[], next: readonly unknown[]): StoredEvent[] {
  return changesBetween(current, next).map((change) => createEvent(scope, change))
}

/** An entry as the contract shows it. */
export function toAssignmentJson (entry: StoredAssignment, userId: string): PhoneNumberAssignment {
  return {
    userId,
    provider: entry.provider,
    phoneNumber: entry.phoneNumber,
    isDefault: entry.isDefault,
    isInboundEnabled: entry.isInboundEnabled,
    ...(entry.label === undefined ? {} : { label: entry.label }),
    createdAt: entry.createdAt.toISOString(),
    updatedAt: entry.updatedAt.toISOString()
  }
}

/** An event as the contract shows it: the log's answer, a webhook's body, what `onEvent` receives. */
export function toEventJson (event: StoredEvent): PhoneNumberEvent {
  const userId = event.userId.toHexString()
  const fromUserId = event.fromUserId?.toHexString()
  return {
    id: event._id,
    type: event.type,
    at: event.at.toISOString(),
    organizationId: event.organizationId.toHexString(),
    userId,
    ...(fromUserId === undefined ? {} : { fromUserId }),
    provider: event.provider,
    phoneNumber: event.phoneNumber,
    before: event.before === null ? null : toAssignmentJson(event.before, fromUserId ?? userId),
    after: event.after === null ? null : toAssignmentJson(event.after, userId),
    actor: event.actor === null ? { sub: null, role: null } : event.actor,
    requestId: event.requestId
  }
}
