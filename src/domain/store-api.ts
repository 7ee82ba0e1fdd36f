/**
 * The store's public contract: what each operation answers, and the
 * interface itself (its options are in store-options.ts). store.ts implements
 * it; everything here is re-exported from there.
 */
import type { ObjectId } from 'mongodb'
import type { AssignmentInput, AssignmentKey, Provider, StoredAssignment } from './assignments.js'
import type { NumberHolder } from './number-holders.js'
import type { ListFilter, ListPosition } from './listing.js'
import type { ChangeContext } from './change-events.js'
import type { EventFilter, EventPage, EventPageRequest } from './event-log.js'
import type { ChangeFeed } from './change-feed.js'

/** The points between the database writes of an operation (see `onStep`). */
export type StoreStep =
  | 'assign:claimed'
  | 'assign:user-written'
  | 'remove:user-written'
  | 'transfer:begun'
  | 'transfer:target-written'
  | 'transfer:committed'
  | 'transfer:source-removed'
  /** Events inserted in the log, not yet taken out of the user's outbox. */
  | 'events:logged'

export interface ListedAssignment extends StoredAssignment {
  userId: ObjectId
}

/** A user's assignment of a number, as read from the user documents. */
export type AssignmentHolder = NumberHolder

/** The number is held by users of another organization (rule 1). */
export interface OtherOrganization { status: 'other-organization', holders: NumberHolder[] }
/** Another assignment routes the number inbound (rule 2). */
export interface InboundHeld { status: 'inbound-held', holders: NumberHolder[] }
/** The user's assignments field holds something other than an array (other code wrote it): it is never overwritten. */
export interface MalformedField { status: 'malformed-field', field: string }

export type AssignResult =
  | { status: 'assigned', assignment: StoredAssignment }
  | { status: 'organization-not-found' }
  | { status: 'user-not-found' }
  | { status: 'conflict' }
  | { status: 'limit-reached', limit: number }
  | OtherOrganization
  | InboundHeld
  | MalformedField

export type RemoveResult =
  | { status: 'removed' }
  | { status: 'organization-not-found' }
  | { status: 'user-not-found' }
  | { status: 'assignment-not-found' }
  | { status: 'conflict' }
  | MalformedField

export interface TransferInput extends AssignmentKey {
  fromUserId: ObjectId
  toUserId: ObjectId
  /** Default: the source assignment's. */
  isDefault?: boolean | undefined
  /** Default: the source assignment's. */
  label?: string | undefined
}

export type TransferResult =
  | { status: 'transferred', assignment: StoredAssignment }
  | { status: 'organization-not-found' }
  | { status: 'user-not-found', which: 'from' | 'to' }
  | { status: 'assignment-not-found' }
  | { status: 'already-held' }
  | { status: 'conflict' }
  | { status: 'limit-reached', limit: number }
  | OtherOrganization
  | InboundHeld
  | MalformedField

export type RouteResult =
  | { status: 'routed', holder: NumberHolder }
  | { status: 'no-route' }
  | { status: 'ambiguous', holders: NumberHolder[] }

export type ListResult =
  /** `next`: where the next page starts; `undefined` on the last page. */
  | { status: 'listed', assignments: ListedAssignment[], next: ListPosition | undefined }
  | { status: 'organization-not-found' }

export type { ListFilter, ListPosition } from './listing.js'
export type { EventFilter, EventPage, EventPageRequest } from './event-log.js'
export type { ChangeActor, ChangeContext, LoggedEvent, StoredEvent } from './change-events.js'
export type { ChangeFeed, FeedEvent } from './change-feed.js'

export interface ListPage {
  /** Most entries to return. Default: all of them (pass a limit for bounded work). */
  limit?: number | undefined
  /** Start after this position (a previous page's `next`). */
  after?: ListPosition | undefined
  /** Most users to read for one page; a sparse filter may then end it short. Default: no bound. */
  maxScannedUsers?: number | undefined
}

/** Who makes a change (recorded in its events), and the time to record (default: now). */
export interface ChangeOptions extends ChangeContext {
  now?: Date | undefined
}

export type EventListResult = EventPage | { status: 'organization-not-found' }

export interface PhoneNumberStore {
  /** Every method that changes an assignment records one event per changed assignment, in the same write. */
  assign (organizationId: ObjectId, userId: ObjectId, input: AssignmentInput, change?: ChangeOptions): Promise<AssignResult>
  remove (organizationId: ObjectId, userId: ObjectId, key: AssignmentKey, change?: ChangeOptions): Promise<RemoveResult>
  /** Moves an assignment, inbound route included, between two users of one organization. */
  transfer (organizationId: ObjectId, input: TransferInput, change?: ChangeOptions): Promise<TransferResult>
  /** A page of the organization's change log, oldest first. */
  listEvents (organizationId: ObjectId, filter: EventFilter, request: EventPageRequest): Promise<EventListResult>
  /** Moves every event still in a user's outbox (a crashed process's) to the log; returns how many users had some. */
  flushPendingEvents (): Promise<number>
  /** Resolves once this store has moved every event it recorded to the log. */
  eventsFlushed (): Promise<void>
  /** Users whose events wait in this process's queue to be moved to the log. */
  eventBacklog (): number
  /** Drops the events recorded before `cutoff` (retention); returns how many. */
  expireEvents (cutoff: Date): Promise<number>
  /** The change log of every organization in log order, without the visibility delay (what a route cache follows). */
  changeFeed: Pick<ChangeFeed, 'read' | 'holds'>
  /** The organization's assignments in the listing order (user `_id`, phone number, provider), a page at a time. */
  list (organizationId: ObjectId, filter?: ListFilter, page?: ListPage): Promise<ListResult>
  /**
   * The assignment that routes the number's inbound calls, read from the user
   * documents in one query (numbers other code wrote included). Two routes
   * answer `ambiguous`, never a pick, except mid-transfer, when the claim says
   * which of the two holds the route.
   */
  findInboundRoute (phoneNumber: string, provider?: Provider): Promise<RouteResult>
  /** @deprecated The inbound route of (provider, phoneNumber) when there is exactly one: use `findInboundRoute`. */
  findHolder (key: AssignmentKey): Promise<AssignmentHolder | undefined>
  /**
   * The stored fields of the user whose `_id` is the hex string `userId`
   * (role, roles, status flags...), without the numbers; `undefined` when no
   * such user exists or the id is not an ObjectId. Used to re-check a caller
   * on every request.
   */
  findCaller (userId: string): Promise<StoredCaller | undefined>
  /**
   * Repairs the claim of one number: fences a step another process left on
   * it, finishes or undoes a transfer left half done, then drops the claim or
   * its inbound route when no user backs them. Never changes what a user
   * holds otherwise.
   */
  repairClaim (phoneNumber: string): Promise<ClaimRepair>
  /** Creates the indexes every lookup above relies on (store-indexes.ts); safe to call repeatedly. */
  ensureIndexes (): Promise<void>
  /**
   * Starts the background work (store-background.ts): moving events a crashed
   * process left in user documents to the log (now, then every
   * `eventSweepIntervalMs`), retention, and delivery to `onEvent`. The plugin
   * calls it when the server is ready; a worker or script calls it itself.
   */
  start (): void
  /** Stops the background work and waits (up to 5 s) for this store's recorded events to reach the log. */
  stop (): Promise<void>
}

/** What `repairClaim` did. */
export interface ClaimRepair {
  transfer: 'none' | 'rolled-back' | 'rolled-forward' | 'in-flight'
  claim: 'none' | 'kept' | 'released' | 'route-cleared' | 'in-flight'
}

/** A user document as stored, without the numbers; other code may store any shape there. */
export type StoredCaller = Readonly<Record<string, unknown>>
