/**
 * One run of a transfer (number-operation.ts runs it, in the number's queue):
 * the entry moves from one user to another of the same organization, inbound
 * route included. The claim records the transfer before the target is written
 * and commits it before the source is, so whoever meets it half done rolls it
 * back or forward (number-ownership.ts).
 */
import type { ObjectId } from 'mongodb'
import { findEntry, removeAssignment, upsertAssignment, type AssignmentInput } from './assignments.js'
import { createEvent, eventsBetween, type StoredEvent } from './change-events.js'
import type { ClaimWriter, TouchScope } from './number-claims.js'
import { holdersOf, isAssignment } from './number-holders.js'
import { RERUN, ruleViolation } from './number-ownership.js'
import { ALREADY_HELD, ASSIGNMENT_NOT_FOUND, claimFor, limitReached, ORGANIZATION_NOT_FOUND, pick, refuseAfterTouch, REMOVED, type OperationContext, type RunOutcome } from './number-operation.js'
import type { ChangeOptions, TransferInput, TransferResult } from './store-api.js'

/** Says which of the transfer's users a missing-user failure is about. */
function whose<Failure extends { status: string }> (failure: Failure, which: 'from' | 'to'): Exclude<Failure, { status: 'user-not-found' }> | { status: 'user-not-found', which: 'from' | 'to' } {
  return failure.status === 'user-not-found' ? { status: 'user-not-found', which } : failure as Exclude<Failure, { status: 'user-not-found' }>
}

export async function transferOnce (context: OperationContext, organizationId: ObjectId, input: TransferInput, change: ChangeOptions, writer: ClaimWriter): Promise<TransferResult | RunOutcome> {
  const { claims, writes, field, maxNumbersPerUser } = context
  const now = change.now ?? new Date()
  const limit = limitReached(context)
  const { phoneNumber, provider, fromUserId, toUserId } = input
  const key = { provider, phoneNumber }
  const scope: TouchScope = { organizationId, owning: true }
  const [organization, documents, touched] = await Promise.all([
    context.findOrganization(organizationId),
    context.findUsersAndHolders(phoneNumber, [fromUserId, toUserId]),
    claims.touch(phoneNumber, writer, scope)
  ])
  context.noticePendingEvents(documents)
  const refuse = async <Refusal>(refusal: Refusal): Promise<Refusal | RunOutcome> => await refuseAfterTouch(context, refusal, touched, phoneNumber)
  if (organization === null) return await refuse(ORGANIZATION_NOT_FOUND)
  const fromUser = pick(documents, fromUserId)
  const toUser = pick(documents, toUserId)
  const sourceArray = writes.readOwnArray(fromUser, organizationId)
  const targetArray = writes.readOwnArray(toUser, organizationId)
  if (!Array.isArray(sourceArray)) return await refuse(whose(sourceArray, 'from'))
  if (!Array.isArray(targetArray)) return await refuse(whose(targetArray, 'to'))
  const source = findEntry(sourceArray, key)
  if (source === undefined) return await refuse(ASSIGNMENT_NOT_FOUND)
  if (findEntry(targetArray, key) !== undefined) return await refuse(ALREADY_HELD)
  const routesInbound = source.isInboundEnabled === true
  // The moved entry may route inbound only if nothing but the source does.
  const others = holdersOf(documents, field, phoneNumber).filter((holder) => !isAssignment(holder, fromUserId, provider))
  const violation = ruleViolation(others, organizationId, routesInbound ? { userId: toUserId, provider } : undefined)
  if (violation !== undefined) return await refuse(violation)

  const claimed = await claimFor(context, phoneNumber, writer, scope, touched)
  if (claimed.status !== 'claimed') return claimed
  // The claim's slot holds this step: every other step is resolved, so the users as read are the whole truth.
  const transfer = await claims.beginTransfer(claimed.claim, { at: now, provider, fromUserId, toUserId }, routesInbound)
  if (transfer === undefined) return RERUN
  await context.step('transfer:begun')

  const moved: AssignmentInput = {
    provider,
    phoneNumber,
    isDefault: input.isDefault ?? source.isDefault,
    isInboundEnabled: routesInbound,
    label: input.label ?? (typeof source.label === 'string' ? source.label : undefined)
  }
  // The target's write announces only the defaults it clears; the move itself is announced by the source's removal, past the commit point.
  const scopeOfEvents = { organizationId, userId: toUserId, at: now, actor: change.actor, requestId: change.requestId }
  const targetEvents: StoredEvent[] = []
  const written = await context.onUser(toUserId, async () =>
    await writes.writeUser<TransferResult>(organizationId, toUserId, toUser, writer.id, (array) => {
      if (findEntry(array, key) !== undefined) return { next: undefined, outcome: ALREADY_HELD }
      if (array.length >= maxNumbersPerUser) return { next: undefined, outcome: limit }
      const { next, assignment } = upsertAssignment(array, moved, now)
      return { next, outcome: { status: 'transferred', assignment } }
    }, (current, next) => eventsBetween(scopeOfEvents, current, next).filter((event) => event.type !== 'assigned'), targetEvents))
  if (written.status === 'fenced') return written // another process took the number over and undoes this transfer
  if (written.status !== 'transferred') {
    await claims.endTransfer(phoneNumber, transfer) // nothing was written to either user
    return whose(written, 'to')
  }
  await context.step('transfer:target-written')
  context.recorded(toUserId, targetEvents)

  // The first read may predate a removal of the source that finished (and released the claim)
  // before this step was recorded: read the source again, now that any later writer must fence
  // this step first. Its entry gone, the copy is undone and the transfer judged again.
  const sourceNow = await writes.findUser(fromUserId)
  const sourceEntries = writes.readOwnArray(sourceNow, organizationId)
  if (!Array.isArray(sourceEntries) || findEntry(sourceEntries, key) === undefined) {
    await context.onUser(toUserId, async () => await writes.writeUser(organizationId, toUserId, await writes.findUser(toUserId), writer.id, (array) => {
      const copy = findEntry(array, key)
      const own = copy !== undefined && copy.updatedAt instanceof Date && copy.updatedAt.getTime() === now.getTime()
      return { next: own ? removeAssignment(array, key) : undefined, outcome: REMOVED }
    }, undefined))
    await claims.endTransfer(phoneNumber, transfer)
    return RERUN
  }

  const transferred = createEvent(scopeOfEvents, { type: 'transferred', before: source, after: written.assignment, fromUserId })
  // Another process took the slot over before the commit: it undoes the target's copy.
  if (!await claims.commitTransfer(phoneNumber, transfer, routesInbound, transferred)) return { status: 'fenced' }
  await context.step('transfer:committed')

  // Past the commit point the transfer has happened: if the source's copy
  // cannot go now (the user kept changing, or another process fenced this
  // step to finish it), the claim keeps the record and whoever meets it next
  // removes the copy.
  const sourceEvents: StoredEvent[] = []
  const sourceRemoved = await context.onUser(fromUserId, async () =>
    await writes.writeUser(organizationId, fromUserId, sourceNow, writer.id, (array) => ({ next: removeAssignment(array, key), outcome: REMOVED }), () => [transferred], sourceEvents))
  if (sourceRemoved.status !== 'removed') return written
  await context.step('transfer:source-removed')
  context.recorded(fromUserId, sourceEvents)
  await claims.endTransfer(phoneNumber, transfer)
  return written
}
