/**
 * The checks of scripts/reliability/ownership.ts, in the order it runs them:
 * the final state (as the script reads it from the users collection), the answers
 * against the contract, lost updates, the history proved by the request times,
 * the lookups' answers, and the figures it reports. Each check pushes what it
 * finds to `problems` and returns its figures.
 */
import type { Document } from 'mongodb'
import { keyOf, type Op, type Sample } from './ownership-load.js'

// --- the final state ----------------------------------------------------------------------
export interface Stored { userId: string, organizationId: string, provider: string, phoneNumber: string, isInboundEnabled: boolean, isDefault: boolean, label: string | undefined }

/** The integrity view: who holds each number, by organization and by inbound route. */
export function checkFinalState (stored: readonly Stored[], problems: string[]): { byNumber: Map<string, Stored[]>, numbersInTwoOrganizations: number, numbersWithTwoInboundEntries: number } {
  const byNumber = new Map<string, Stored[]>()
  for (const entry of stored) byNumber.set(entry.phoneNumber, [...(byNumber.get(entry.phoneNumber) ?? []), entry])
  let numbersInTwoOrganizations = 0
  let numbersWithTwoInboundEntries = 0
  for (const [phoneNumber, entries] of byNumber) {
    const organizationIds = new Set(entries.map((entry) => entry.organizationId))
    if (organizationIds.size > 1) {
      numbersInTwoOrganizations++
      problems.push(`${phoneNumber} is held by ${organizationIds.size} organizations: ${entries.map((e) => `${e.userId} (${e.provider}, org ${e.organizationId})`).join(', ')}`)
    }
    const inbound = entries.filter((entry) => entry.isInboundEnabled)
    if (inbound.length > 1) {
      numbersWithTwoInboundEntries++
      problems.push(`${phoneNumber} has ${inbound.length} inbound entries: ${inbound.map((e) => `${e.userId} (${e.provider})`).join(', ')}`)
    }
  }
  const duplicateKeys = stored.length - new Set(stored.map((e) => keyOf(e.userId, e.provider, e.phoneNumber))).size
  if (duplicateKeys > 0) problems.push(`${duplicateKeys} (user, provider, number) entries stored twice`)
  return { byNumber, numbersInTwoOrganizations, numbersWithTwoInboundEntries }
}

// --- answers outside the contract, 5xx, lookups -------------------------------------------
const expected: Record<Op, Record<number, readonly string[] | undefined>> = {
  assign: {
    200: undefined,
    409: ['Phone number belongs to another organization', 'Inbound route held by another assignment', 'Conflict']
  },
  remove: { 200: undefined, 404: ['Phone number not found'], 409: ['Conflict'] },
  transfer: {
    200: undefined,
    404: ['Phone number not found'],
    409: ['Target user already holds this phone number', 'Inbound route held by another assignment', 'Phone number belongs to another organization', 'Conflict']
  },
  lookup: { 200: undefined, 404: ['No inbound route'] }
}

export interface AnswerFigures {
  byOperation: Record<string, Record<string, number>>
  refusedInFlight: number
  unexpected: Map<string, number>
  fiveXx: number
  noAnswer: number
  lookups: Sample[]
  ambiguousLookups: number
  lookupFiveXx: number
}

export function checkAnswers (samples: readonly Sample[], problems: string[]): AnswerFigures {
  const byOperation: Record<string, Record<string, number>> = {}
  let refusedInFlight = 0
  const unexpected = new Map<string, number>()
  for (const s of samples) {
    const details = (s.body as { details?: unknown } | null)?.details
    // A refusal on the claim alone (another process is writing the number "right now") is told apart.
    const inFlight = typeof details === 'string' && details.includes('right now') ? ' (claim held by another process)' : ''
    const outcome = s.failure ?? (s.status === 200 || s.error === undefined ? String(s.status) : `${s.status} ${s.error}${inFlight}`)
    if (inFlight !== '') refusedInFlight++
    const counts = byOperation[s.op] ?? (byOperation[s.op] = {})
    counts[outcome] = (counts[outcome] ?? 0) + 1
    const allowed = expected[s.op][s.status]
    const fits = s.failure === undefined && s.status in expected[s.op] && (allowed === undefined || (s.error !== undefined && allowed.includes(s.error)))
    if (!fits) {
      const what = `${s.op} answered ${outcome}`
      if (!unexpected.has(what)) problems.push(`${what} (first: ${s.id} to server ${s.server}, ${JSON.stringify(s.body)?.slice(0, 300) ?? ''})`)
      unexpected.set(what, (unexpected.get(what) ?? 0) + 1)
    }
  }
  const fiveXx = samples.filter((s) => s.status >= 500).length
  const noAnswer = samples.filter((s) => s.failure !== undefined).length
  const lookups = samples.filter((s) => s.op === 'lookup')
  const ambiguousLookups = lookups.filter((s) => s.status === 409 && s.error === 'Ambiguous inbound route').length
  const lookupFiveXx = lookups.filter((s) => s.status >= 500 || s.failure !== undefined).length
  return { byOperation, refusedInFlight, unexpected, fiveXx, noAnswer, lookups, ambiguousLookups, lookupFiveXx }
}

// --- lost updates ---------------------------------------------------------------------------
/**
 * Per (user, provider, number) key, the operations that changed it: a writer
 * (assign 200, or transfer 200 into it) leaves the entry with its values, a
 * remover (remove 200, or transfer 200 out of it) leaves no entry; a 5xx or
 * unanswered request on the key may have done either (unknown).
 *
 * Each takes effect at one instant inside its request's [start, end], so of
 * two operations where one ended before the other started, the first took
 * effect first; overlapping ones may have taken effect in either order. The
 * operation that took effect last is therefore among the "maximal" ones (no
 * other operation on the key started after it ended), and the stored state at
 * the end must be what one maximal operation leaves. Anything else is a lost
 * (or a phantom) update. isDefault is not compared: assigning another number
 * of the provider as default clears it, by design.
 */
export interface KeyOp { kind: 'writer' | 'remover' | 'unknown', op: Op, start: number, end: number, id: string, isInboundEnabled?: boolean, label?: string | undefined }

export function keyOperations (samples: readonly Sample[]): Map<string, KeyOp[]> {
  const opsByKey = new Map<string, KeyOp[]>()
  const addOp = (key: string, op: KeyOp): void => { opsByKey.set(key, [...(opsByKey.get(key) ?? []), op]) }
  for (const s of samples) {
    if (s.op === 'lookup' || s.userId === undefined || s.provider === undefined) continue
    const unknown = s.failure !== undefined || s.status >= 500
    if (!unknown && s.status !== 200) continue
    const base = { op: s.op, start: s.start, end: s.end, id: s.id }
    const key = keyOf(s.userId, s.provider, s.phoneNumber)
    if (unknown) {
      addOp(key, { ...base, kind: 'unknown' })
      if (s.op === 'transfer') addOp(keyOf(s.toUserId!, s.provider, s.phoneNumber), { ...base, kind: 'unknown' })
    } else if (s.op === 'assign') {
      addOp(key, { ...base, kind: 'writer', isInboundEnabled: s.isInboundEnabled!, label: s.label })
    } else if (s.op === 'remove') {
      addOp(key, { ...base, kind: 'remover' })
    } else {
      addOp(key, { ...base, kind: 'remover' })
      const moved = (s.body as { assignment?: { isInboundEnabled?: unknown, label?: unknown } }).assignment
      addOp(keyOf(s.toUserId!, s.provider, s.phoneNumber), {
        ...base,
        kind: 'writer',
        isInboundEnabled: moved?.isInboundEnabled === true,
        label: typeof moved?.label === 'string' ? moved.label : undefined
      })
    }
  }
  return opsByKey
}

export function lostUpdatesOf (opsByKey: ReadonlyMap<string, KeyOp[]>, stored: readonly Stored[]): string[] {
  const storedByKey = new Map(stored.map((entry) => [keyOf(entry.userId, entry.provider, entry.phoneNumber), entry]))
  const lostUpdates: string[] = []
  for (const [key, ops] of opsByKey) {
    const maximal = ops.filter((op) => !ops.some((other) => other.start > op.end))
    if (maximal.some((op) => op.kind === 'unknown')) continue
    const entry = storedByKey.get(key)
    const explained = entry === undefined
      ? maximal.some((op) => op.kind === 'remover')
      : maximal.some((op) => op.kind === 'writer' && op.isInboundEnabled === entry.isInboundEnabled && op.label === entry.label)
    if (!explained) {
      const describe = (op: KeyOp): string => `${op.id} ${op.kind}${op.kind === 'writer' ? ` inbound=${String(op.isInboundEnabled)} label=${op.label ?? '-'}` : ''} [${op.start.toFixed(0)}-${op.end.toFixed(0)}]`
      lostUpdates.push(`${key}: stored ${entry === undefined ? 'nothing' : `inbound=${String(entry.isInboundEnabled)} label=${entry.label ?? '-'}`}, last operations ${maximal.map(describe).join('; ')}`)
    }
  }
  for (const [key, entry] of storedByKey) {
    if (!opsByKey.has(key)) lostUpdates.push(`${key}: stored inbound=${String(entry.isInboundEnabled)}, but no successful request wrote it`)
  }
  return lostUpdates
}

// --- the history, from the answers and their times ----------------------------------------
/**
 * The rules during the run, from the answers alone. A writer's entry provably
 * exists from the end of its request until the start of the first operation
 * on the key that may have taken effect after it (one that did not end before
 * the writer started): a remover or unknown for presence, any other operation
 * for its inbound flag. Two such windows that overlap, for one number, in two
 * organizations (rule 1) or as two inbound routes (rule 2), prove the rule
 * was broken at that moment. The windows only ever err short, so this can
 * miss a violation but never invent one.
 */
interface Window { key: string, organizationId: string, from: number, to: number }

export interface HistoryFigures {
  presence: Map<string, Window[]>
  inboundWindows: Map<string, Window[]>
  twoOrganizationsDuringRun: number
  twoRoutesDuringRun: number
  notFoundWhilePresent: number
  lookupsContradicted: number
  removedTwice: Record<string, number>
  removedUnwritten: number
}

export function checkHistory (opsByKey: ReadonlyMap<string, KeyOp[]>, samples: readonly Sample[], lookups: readonly Sample[], organizationOf: ReadonlyMap<string, string>, problems: string[]): HistoryFigures {
  const presence = new Map<string, Window[]>()
  const inboundWindows = new Map<string, Window[]>()
  for (const [key, ops] of opsByKey) {
    const [userId, , phoneNumber] = key.split('|') as [string, string, string]
    for (const writer of ops) {
      if (writer.kind !== 'writer') continue
      const later = ops.filter((op) => op !== writer && op.end > writer.start)
      const presentUntil = Math.min(Infinity, ...later.filter((op) => op.kind !== 'writer').map((op) => op.start))
      const routedUntil = Math.min(Infinity, ...later.map((op) => op.start))
      const window = { key, organizationId: organizationOf.get(userId)!, from: writer.end }
      if (writer.end < presentUntil) presence.set(phoneNumber, [...(presence.get(phoneNumber) ?? []), { ...window, to: presentUntil }])
      if (writer.isInboundEnabled === true && writer.end < routedUntil) inboundWindows.set(phoneNumber, [...(inboundWindows.get(phoneNumber) ?? []), { ...window, to: routedUntil }])
    }
  }
  const overlapping = (windows: readonly Window[], clash: (a: Window, b: Window) => boolean): Array<[Window, Window]> => {
    const pairs: Array<[Window, Window]> = []
    for (const [i, a] of windows.entries()) {
      for (const b of windows.slice(i + 1)) if (clash(a, b) && a.from < b.to && b.from < a.to) pairs.push([a, b])
    }
    return pairs
  }
  const describeWindow = (w: Window): string => `${w.key} (org ${w.organizationId}) ${w.from.toFixed(0)}-${w.to === Infinity ? 'end' : w.to.toFixed(0)} ms`
  let twoOrganizationsDuringRun = 0
  let twoRoutesDuringRun = 0
  for (const [phoneNumber, windows] of presence) {
    const pairs = overlapping(windows, (a, b) => a.organizationId !== b.organizationId)
    if (pairs.length > 0) {
      twoOrganizationsDuringRun++
      problems.push(`during the run ${phoneNumber} was provably held by two organizations: ${describeWindow(pairs[0]![0])} and ${describeWindow(pairs[0]![1])}`)
    }
  }
  for (const [phoneNumber, windows] of inboundWindows) {
    const pairs = overlapping(windows, (a, b) => a.key !== b.key)
    if (pairs.length > 0) {
      twoRoutesDuringRun++
      problems.push(`during the run ${phoneNumber} provably had two inbound routes: ${describeWindow(pairs[0]![0])} and ${describeWindow(pairs[0]![1])}`)
    }
  }
  const covers = (w: Window, s: Sample): boolean => w.from <= s.start && s.end <= w.to
  // A remove or transfer answering "Phone number not found" while its entry provably existed.
  let notFoundWhilePresent = 0
  for (const s of samples) {
    if ((s.op !== 'remove' && s.op !== 'transfer') || s.status !== 404 || s.userId === undefined || s.provider === undefined) continue
    const key = keyOf(s.userId, s.provider, s.phoneNumber)
    const window = (presence.get(s.phoneNumber) ?? []).find((w) => w.key === key && covers(w, s))
    if (window === undefined) continue
    notFoundWhilePresent++
    if (notFoundWhilePresent <= 3) problems.push(`${s.op} ${s.id} answered 404 at ${s.start.toFixed(0)}-${s.end.toFixed(0)} ms while ${describeWindow(window)} held it`)
  }
  // A lookup contradicted by an inbound route that provably existed throughout it: a 404, or a 200 naming another assignment.
  let lookupsContradicted = 0
  for (const s of lookups) {
    if (s.status !== 200 && s.status !== 404) continue
    const named = s.status === 200 ? keyOf(String((s.body as { userId?: unknown }).userId), String((s.body as { provider?: unknown }).provider), s.phoneNumber) : undefined
    const window = (inboundWindows.get(s.phoneNumber) ?? []).find((w) => covers(w, s) && w.key !== named && (s.provider === undefined || w.key.split('|')[1] === s.provider))
    if (window === undefined) continue
    lookupsContradicted++
    if (lookupsContradicted <= 3) problems.push(`lookup ${s.id} answered ${s.status} ${JSON.stringify(s.body)} at ${s.start.toFixed(0)}-${s.end.toFixed(0)} ms while ${describeWindow(window)} routed it`)
  }
  /**
   * An entry removed (or moved away) twice with no write of it that could have
   * taken effect in between, or removed before any write of it could have: a
   * transfer or remove that succeeded on an entry that was already gone.
   * R1 then W then R2 is possible only if W ended after R1 started and started
   * before R2 ended (either way round).
   */
  const removedTwice: Record<string, number> = {}
  let removedUnwritten = 0
  for (const [key, ops] of opsByKey) {
    const removers = ops.filter((op) => op.kind === 'remover')
    const writers = ops.filter((op) => op.kind !== 'remover')
    for (const r of removers) {
      if (!writers.some((w) => w.start < r.end)) {
        removedUnwritten++
        if (removedUnwritten <= 3) problems.push(`${r.id} removed ${key}, which no write could have created before it`)
      }
    }
    for (const [i, a] of removers.entries()) {
      for (const b of removers.slice(i + 1)) {
        const between = (x: KeyOp, y: KeyOp): boolean => writers.some((w) => w.end > x.start && w.start < y.end)
        if (between(a, b) || between(b, a)) continue
        const pair = [a.op, b.op].sort().join('+')
        removedTwice[pair] = (removedTwice[pair] ?? 0) + 1
        if (removedTwice[pair] <= 2) problems.push(`${key} was removed or moved away twice (${pair}), by ${a.id} [${a.start.toFixed(0)}-${a.end.toFixed(0)}] and ${b.id} [${b.start.toFixed(0)}-${b.end.toFixed(0)}], with no write of it that could fit between`)
      }
    }
  }

  const removedTwiceTotal = Object.values(removedTwice).reduce((a, b) => a + b, 0)
  if (removedTwiceTotal > 0) problems.push(`${removedTwiceTotal} entries removed or moved away twice: ${JSON.stringify(removedTwice)}; scripts/reliability/repro-transfer-race.ts reproduces the transfer races`)
  return { presence, inboundWindows, twoOrganizationsDuringRun, twoRoutesDuringRun, notFoundWhilePresent, lookupsContradicted, removedTwice, removedUnwritten }
}

/** Numbers that went from one organization to another during the run (freed, then assigned elsewhere). */
export function numbersThatChangedOrganization (samples: readonly Sample[]): number {
  const assignedBy = new Map<string, Set<string>>()
  for (const s of samples) if (s.op === 'assign' && s.status === 200) assignedBy.set(s.phoneNumber, (assignedBy.get(s.phoneNumber) ?? new Set()).add(s.organizationId))
  return [...assignedBy.values()].filter((set) => set.size > 1).length
}

/**
 * A lookup's 200 must name a (user, provider) of the right organization that an inbound write
 * (or a transfer, which keeps the route) had started to create before the lookup ended.
 */
export function checkLookupAnswers (lookups: readonly Sample[], opsByKey: ReadonlyMap<string, KeyOp[]>, organizationOf: ReadonlyMap<string, string>, problems: string[]): number {
  let lookupsChecked = 0
  for (const s of lookups) {
    if (s.status !== 200) continue
    lookupsChecked++
    const answer = s.body as { userId?: string, provider?: string, organizationId?: string, phoneNumber?: string }
    const key = keyOf(String(answer.userId), String(answer.provider), s.phoneNumber)
    const writes = (opsByKey.get(key) ?? []).filter((op) => op.kind !== 'remover' && op.start < s.end && op.isInboundEnabled !== false)
    if (answer.phoneNumber !== s.phoneNumber || (s.provider !== undefined && answer.provider !== s.provider)) problems.push(`lookup ${s.id} of ${s.phoneNumber}${s.provider === undefined ? '' : ` (${s.provider})`} answered ${JSON.stringify(answer)}`)
    else if (organizationOf.get(String(answer.userId)) !== answer.organizationId) problems.push(`lookup ${s.id} named user ${String(answer.userId)} with organization ${String(answer.organizationId)}`)
    else if (writes.length === 0) problems.push(`lookup ${s.id} routed ${s.phoneNumber} to ${key}, which no inbound write had created`)
  }
  return lookupsChecked
}

/** Claims are bookkeeping (a stale one is repaired on the next access): reported, not judged. */
export function claimFiguresOf (claims: readonly Document[], byNumber: ReadonlyMap<string, Stored[]>): Record<'count' | 'unheldNumber' | 'otherOrganization' | 'routeNotBacked' | 'routeMissing' | 'transferPending', number> {
  const claimFigures = { count: claims.length, unheldNumber: 0, otherOrganization: 0, routeNotBacked: 0, routeMissing: 0, transferPending: 0 }
  for (const claim of claims) {
    const entries = byNumber.get(String(claim._id)) ?? []
    const inbound = entries.find((entry) => entry.isInboundEnabled)
    const route = claim['inbound'] as { userId?: unknown, provider?: unknown } | null | undefined
    if (claim['transfer'] !== undefined) claimFigures.transferPending++
    if (entries.length === 0) claimFigures.unheldNumber++
    else if (entries.some((entry) => entry.organizationId !== String(claim['organizationId']))) claimFigures.otherOrganization++
    if (route != null && !(inbound !== undefined && String(route.userId) === inbound.userId && route.provider === inbound.provider)) claimFigures.routeNotBacked++
    if (route == null && inbound !== undefined) claimFigures.routeMissing++
  }
  return claimFigures
}

/**
 * Of the writes the rules allowed (200, or refused only because concurrent
 * writes kept the store from finishing: 409 Conflict), the share that
 * succeeded. 404s and rule refusals (another organization, the route held,
 * already held) are what the rules answer, not a failure to make progress.
 */
export function successRatesOf (samples: readonly Sample[]): Record<'assign' | 'remove' | 'transfer', { requests: number, succeeded: number, lostToConcurrency: number, ofAllowed: number | null }> {
  return Object.fromEntries((['assign', 'remove', 'transfer'] as const).map((op) => {
    const ofOp = samples.filter((s) => s.op === op)
    const succeeded = ofOp.filter((s) => s.status === 200).length
    const lostToConcurrency = ofOp.filter((s) => s.status === 409 && s.error === 'Conflict').length
    const allowed = succeeded + lostToConcurrency
    return [op, { requests: ofOp.length, succeeded, lostToConcurrency, ofAllowed: allowed === 0 ? null : +(succeeded / allowed).toFixed(3) }]
  })) as Record<'assign' | 'remove' | 'transfer', { requests: number, succeeded: number, lostToConcurrency: number, ofAllowed: number | null }>
}
