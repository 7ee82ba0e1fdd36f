/**
 * One run of an assign and of a remove (number-operation.ts runs them, in
 * the number's and the user's queues). Each reads the organization, the
 * users and the claim in one round trip, judges the ownership rules on the
 * user documents, then writes the user under its step.
 */
import type { ObjectId } from 'mongodb'
import { findEntry, removeAssignment, upsertAssignment, type AssignmentInput, type AssignmentKey } from './assignments.js'
import type { StoredEvent } from './change-events.js'
import type { ClaimWriter, TouchScope } from './number-claims.js'
import { holdersOf, isSameObjectId } from './number-holders.js'
import { RERUN, ruleViolation } from './number-ownership.js'
import { ASSIGNMENT_NOT_FOUND, claimFor, describeChanges, limitReached, ORGANIZATION_NOT_FOUND, pick, refuseAfterTouch, REMOVED, type OperationContext, type RunOutcome } from './number-operation.js'
import type { AssignResult, ChangeOptions, RemoveResult } from './store-api.js'
import type { CONFLICT } from './user-writes.js'

export async function assignOnce (context: OperationContext, organizationId: ObjectId, userId: ObjectId, input: AssignmentInput, change: ChangeOptions, writer: ClaimWriter): Promise<AssignResult | RunOutcome> {
  const { claims, writes, ownership, field, maxNumbersPerUser } = context
  const now = change.now ?? new Date()
  const { phoneNumber } = input
  const limit = limitReached(context)
  const route = (input.isInboundEnabled ?? true) ? { userId, provider: input.provider } : undefined
  const owning: TouchScope = { organizationId, owning: true, inbound: route }
  // One round trip: the organization, the user with every holder of the number, and the claim.
  const [organization, documents, touched] = await Promise.all([
    context.findOrganization(organizationId),
    context.findUsersAndHolders(phoneNumber, [userId]),
    claims.touch(phoneNumber, writer, owning)
  ])
  context.noticePendingEvents(documents)
  const refuse = async <Refusal>(refusal: Refusal): Promise<Refusal | RunOutcome> => await refuseAfterTouch(context, refusal, touched, phoneNumber)
  if (organization === null) return await refuse(ORGANIZATION_NOT_FOUND)
  const user = pick(documents, userId)
  const current = writes.readOwnArray(user, organizationId)
  if (!Array.isArray(current)) return await refuse(current)
  // Updating an entry the user holds adds no holder: only its route is judged (other code may have put the number in two organizations).
  const ownEntry = findEntry(current, input) !== undefined
  if (current.length >= maxNumbersPerUser && !ownEntry) return await refuse(limit)
  const violation = ruleViolation(holdersOf(documents, field, phoneNumber), ownEntry ? undefined : organizationId, route)
  if (violation !== undefined) return await refuse(violation)

  const claimed = await claimFor(context, phoneNumber, writer, ownEntry ? { organizationId, owning: false, inbound: route } : owning, touched)
  if (claimed.status !== 'claimed') return claimed
  await context.step('assign:claimed')

  const written: StoredEvent[] = []
  const outcome = await writes.writeUser<AssignResult | typeof RERUN>(organizationId, userId, user, writer.id, (array) => {
    const holds = findEntry(array, input) !== undefined
    // The entry went since the first read: a new holder now, to be judged again.
    if (ownEntry && !holds) return { next: undefined, outcome: RERUN }
    if (array.length >= maxNumbersPerUser && !holds) return { next: undefined, outcome: limit }
    const { next, assignment } = upsertAssignment(array, input, now)
    return { next, outcome: { status: 'assigned', assignment } }
  }, describeChanges(organizationId, userId, now, change), written)
  if (outcome.status !== 'assigned') {
    await ownership.settle(phoneNumber)
    return outcome
  }
  await context.step('assign:user-written')
  context.recorded(userId, written)
  const claimedRoute = claimed.claim.inbound
  if (route === undefined && claimedRoute != null && isSameObjectId(userId, claimedRoute.userId) && claimedRoute.provider === input.provider) {
    await ownership.settle(phoneNumber) // the route was switched off: free it for another assignment
  }
  return outcome
}

export async function removeOnce (context: OperationContext, organizationId: ObjectId, userId: ObjectId, key: AssignmentKey, change: ChangeOptions, writer: ClaimWriter): Promise<RemoveResult | RunOutcome> {
  const { claims, writes, ownership } = context
  const { phoneNumber } = key
  // A removal adds no holder: it records its step on the claim (so a
  // transfer in another process fences it rather than copy what it removes)
  // whatever organization the claim names.
  const scope: TouchScope = { organizationId, owning: false }
  const [organization, user, touched] = await Promise.all([
    context.findOrganization(organizationId),
    writes.findUser(userId),
    claims.touch(phoneNumber, writer, scope)
  ])
  if (organization === null) {
    if (touched !== undefined) await ownership.settle(phoneNumber)
    return ORGANIZATION_NOT_FOUND
  }
  const claimed = await claimFor(context, phoneNumber, writer, scope, touched)
  if (claimed.status !== 'claimed') return claimed as RunOutcome | typeof CONFLICT
  context.noticePendingEvents([user])
  const written: StoredEvent[] = []
  const outcome = await writes.writeUser<RemoveResult>(organizationId, userId, user, writer.id, (current) => {
    const next = removeAssignment(current, key)
    return next === undefined ? { next, outcome: ASSIGNMENT_NOT_FOUND } : { next, outcome: REMOVED }
  }, describeChanges(organizationId, userId, change.now ?? new Date(), change), written)
  if (outcome.status === 'removed') {
    await context.step('remove:user-written')
    context.recorded(userId, written)
  }
  // Whatever happened, the claim may stand for nothing now.
  await ownership.settle(phoneNumber)
  return outcome
}
