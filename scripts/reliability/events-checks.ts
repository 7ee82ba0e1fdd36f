/**
 * The request record of scripts/reliability/events.ts and its checks of the
 * event log and the webhook's receipts: every request answered 200 has exactly
 * one event of its own, nothing else is logged, every logged event is received
 * with a valid signature. The problems found are pushed to `problems`, in the
 * order the script reports them.
 */
import type { Provider } from '../../src/domain/assignments.js'
import type { Receipt } from './events-receiver.js'
import type { RequestRecord } from './http-client.js'
import type { ServerProcess } from './server-process.js'

export const keyOf = (userId: string, provider: string, phoneNumber: string): string => `${userId}|${provider}|${phoneNumber}`

export type Op = 'assign' | 'remove'
/** One request and its answer. */
export interface Sample extends RequestRecord<Op> {
  userId: string
  provider: Provider
  phoneNumber: string
  label?: string
}

/** An event of the log, as stored (the fields the checks read). */
export interface LoggedEvent { _id: string, type: string, userId: unknown, provider: string, phoneNumber: string, requestId: string | null, after: { label?: unknown } | null }

export interface EventFigures {
  answered200: Sample[]
  ambiguous: Sample[]
  refused: Sample[]
  okRequests: number
  missingOrWrong: number
  extraEvents: number
  ambiguousWithEvent: number
  eventsOfOtherRequests: number
  duplicateIdsInLog: number
  receiptsById: Map<string, number>
  neverReceived: number
  receivedNotLogged: number
  invalidSignatures: number
  bodyIdMismatches: number
  duplicateDeliveries: number[]
  outOfOrder: number
  failedAttempts: number
  fiveXx: number
  byStatus: Record<string, number>
}

/** `processes`: every server process that ran (their logs count the failed delivery attempts). */
export function checkEvents (samples: readonly Sample[], logged: readonly LoggedEvent[], receipts: readonly Receipt[], processes: readonly ServerProcess[], problems: string[]): EventFigures {
  const byRequest = new Map<string, LoggedEvent[]>()
  for (const event of logged) if (event.requestId !== null) byRequest.set(event.requestId, [...(byRequest.get(event.requestId) ?? []), event])
  const sampleById = new Map(samples.map((s) => [s.id, s]))
  const ownEvents = (s: Sample): LoggedEvent[] => (byRequest.get(s.id) ?? []).filter((e) => keyOf(String(e.userId), e.provider, e.phoneNumber) === keyOf(s.userId, s.provider, s.phoneNumber))
  /** The event a 200 answer implies: an assign's type and label, a remove's type and no `after`. */
  const matches = (s: Sample, e: LoggedEvent): boolean => (s.op === 'assign'
    ? ['assigned', 'updated'].includes(e.type) && e.after?.label === s.label
    : e.type === 'removed' && e.after === null)

  const answered200 = samples.filter((s) => s.status === 200)
  // In flight at the SIGKILL (or otherwise unanswered): the change may or may not have been stored.
  const ambiguous = samples.filter((s) => s.failure !== undefined && s.failure !== 'ECONNREFUSED')
  const refused = samples.filter((s) => s.failure === 'ECONNREFUSED')
  let okRequests = 0
  for (const s of answered200) {
    const own = ownEvents(s)
    if (own.length === 1 && matches(s, own[0]!)) okRequests++
    else if (problems.length < 20) problems.push(`${s.op} ${s.id} of ${keyOf(s.userId, s.provider, s.phoneNumber)} answered 200 with ${own.length} events of its own (${own.map((e) => `${e.type} label ${String(e.after?.label)}`).join(', ') || 'none'})`)
  }
  const missingOrWrong = answered200.length - okRequests
  // Other events of a 200 request: only 'updated' ones (a cleared default) are fine; isDefault false should leave none.
  let extraEvents = 0
  for (const s of answered200) {
    const extras = (byRequest.get(s.id) ?? []).filter((e) => !ownEvents(s).includes(e))
    extraEvents += extras.length
    for (const e of extras) if (e.type !== 'updated') problems.push(`${s.id} also logged ${e.type} of ${e.phoneNumber} for user ${String(e.userId)}`)
  }
  let ambiguousWithEvent = 0
  let eventsOfOtherRequests = 0
  for (const [requestId, events] of byRequest) {
    const s = sampleById.get(requestId)
    if (s?.status === 200) continue
    if (s !== undefined && ambiguous.includes(s) && events.length === ownEvents(s).length && events.length <= 1) {
      ambiguousWithEvent++
      continue
    }
    eventsOfOtherRequests += events.length
    if (eventsOfOtherRequests <= 5) problems.push(`${events.length} event(s) with requestId ${requestId} (${s === undefined ? 'no such request' : `answered ${s.failure ?? s.status}`})`)
  }
  const withoutRequestId = logged.filter((e) => e.requestId === null).length
  if (withoutRequestId > 0) problems.push(`${withoutRequestId} events without a requestId`)
  if (eventsOfOtherRequests > 0) problems.push(`${eventsOfOtherRequests} events of requests that did not answer 200 and were not in flight at the SIGKILL`)

  const loggedIds = new Set(logged.map((e) => e._id))
  const duplicateIdsInLog = logged.length - loggedIds.size
  const receiptsById = new Map<string, number>()
  for (const r of receipts) receiptsById.set(r.eventId, (receiptsById.get(r.eventId) ?? 0) + 1)
  const neverReceived = logged.filter((e) => !receiptsById.has(e._id)).length
  const receivedNotLogged = [...receiptsById.keys()].filter((id) => !loggedIds.has(id)).length
  const invalidSignatures = receipts.filter((r) => !r.valid).length
  const bodyIdMismatches = receipts.filter((r) => !r.bodyIdMatches).length
  const duplicateDeliveries = [...receiptsById.values()].filter((n) => n > 1)
  // Per number, the log's order against the order of first receipt (only the oldest pending event of a number is attempted).
  const firstReceipt = new Map<string, number>()
  for (const [i, r] of receipts.entries()) if (!firstReceipt.has(r.eventId)) firstReceipt.set(r.eventId, i)
  let outOfOrder = 0
  const lastByNumber = new Map<string, number>()
  for (const e of logged) {
    const index = firstReceipt.get(e._id)
    if (index === undefined) continue
    if (index < (lastByNumber.get(e.phoneNumber) ?? -1)) outOfOrder++
    lastByNumber.set(e.phoneNumber, Math.max(index, lastByNumber.get(e.phoneNumber) ?? -1))
  }
  const failedAttempts = processes.reduce((n, p) => n + p.logs.filter((line) => String(line['msg']).includes('event delivery failed')).length, 0)
  const fiveXx = samples.filter((s) => s.status >= 500).length
  const byStatus: Record<string, number> = {}
  for (const s of samples) byStatus[`${s.op} ${s.failure ?? s.status}`] = (byStatus[`${s.op} ${s.failure ?? s.status}`] ?? 0) + 1

  if (fiveXx > 0) {
    // Say why: the servers' own error lines (level 50 = error) name the failure behind a 5xx.
    for (const p of processes) for (const line of p.logs.filter((l) => Number(l['level']) >= 50).slice(0, 5)) console.error(JSON.stringify(line).slice(0, 1500))
  }
  if (duplicateIdsInLog > 0) problems.push(`${duplicateIdsInLog} event ids twice in the log`)
  if (neverReceived > 0) problems.push(`${neverReceived} logged events never received by the webhook`)
  if (receivedNotLogged > 0) problems.push(`${receivedNotLogged} event ids received that the log does not hold`)
  if (invalidSignatures > 0) problems.push(`${invalidSignatures} requests with an invalid signature`)
  if (bodyIdMismatches > 0) problems.push(`${bodyIdMismatches} requests whose body id differs from X-Event-Id`)
  return {
    answered200,
    ambiguous,
    refused,
    okRequests,
    missingOrWrong,
    extraEvents,
    ambiguousWithEvent,
    eventsOfOtherRequests,
    duplicateIdsInLog,
    receiptsById,
    neverReceived,
    receivedNotLogged,
    invalidSignatures,
    bodyIdMismatches,
    duplicateDeliveries,
    outOfOrder,
    failedAttempts,
    fiveXx,
    byStatus
  }
}
