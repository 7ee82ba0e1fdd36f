/**
 * The load of scripts/reliability/ownership.ts: its request record (Sample),
 * the first claims of fresh numbers and the keep-alive workers on the hot
 * numbers. Every request and answer is pushed to `samples`.
 */
import type http from 'node:http'
import { PROVIDERS, type Provider } from '../../src/domain/assignments.js'
import { RequestFailure, call, newAgent, type RequestRecord } from './http-client.js'
import type { ServerProcess } from './server-process.js'

export type Op = 'assign' | 'remove' | 'transfer' | 'lookup'

/** One request and its answer. */
export interface Sample extends RequestRecord<Op> {
  body: unknown
  organizationId: string
  phoneNumber: string
  provider?: Provider
  /** assign and remove: the user; transfer: the source. */
  userId?: string
  toUserId?: string
  isInboundEnabled?: boolean
  isDefault?: boolean
  label?: string
}

export interface Organization { id: string, userIds: string[] }

export const rand = (n: number): number => Math.floor(Math.random() * n)
export const pickOne = <T>(list: readonly T[]): T => list[rand(list.length)]!
export const keyOf = (userId: string, provider: string, phoneNumber: string): string => `${userId}|${provider}|${phoneNumber}`

export interface LoadSetup {
  servers: readonly ServerProcess[]
  authorization: string
  organizations: readonly Organization[]
  organizationOf: ReadonlyMap<string, string>
  /** The hot numbers. */
  numbers: readonly string[]
}

export interface OwnershipLoad {
  /** Every request sent so far, with its answer. */
  samples: Sample[]
  /** Nine concurrent assigns of each fresh number (see firstClaims below). */
  firstClaims: (freshNumbers: readonly string[]) => Promise<void>
  /** `connections` workers, until `seconds` after `started` (performance.now()). */
  run: (connections: number, started: number, seconds: number) => Promise<void>
}

export function ownershipLoad ({ servers, authorization, organizations, organizationOf, numbers }: LoadSetup): OwnershipLoad {
  const serverCount = servers.length
  /** What the driver believes is held, from the answers: only to aim removes and transfers at real entries. */
  const believed = new Map<string, { userId: string, provider: Provider, phoneNumber: string }>()
  /** The organization that last assigned each number, from the answers: most assigns go there, the rest try another organization. */
  const believedOwner = new Map<string, string>()
  const samples: Sample[] = []
  let counter = 0

  async function send (agent: http.Agent | false, sample: Sample, method: string, path: string, body?: unknown): Promise<void> {
    sample.start = performance.now()
    try {
      const answer = await call(servers[sample.server]!.base, method, path, {
        agent,
        headers: { authorization, 'x-request-id': sample.id },
        ...(body === undefined ? {} : { body })
      })
      sample.status = answer.status
      sample.body = answer.body
      const error = (answer.body as { error?: unknown } | null)?.error
      if (typeof error === 'string') sample.error = error
    } catch (error) {
      sample.failure = error instanceof RequestFailure ? error.code : String(error)
    }
    sample.end = performance.now()
  }

  async function sendAssign (agent: http.Agent | false, sample: Sample): Promise<void> {
    await send(agent, sample, 'POST', `/api/organizations/${sample.organizationId}/phone-numbers`, {
      targetUserId: sample.userId,
      provider: sample.provider,
      phoneNumber: sample.phoneNumber,
      isDefault: sample.isDefault,
      isInboundEnabled: sample.isInboundEnabled,
      ...(sample.label === undefined ? {} : { label: sample.label })
    })
  }

  /**
   * The first claim of a number: OWNERSHIP_FRESH_NUMBERS (default 30) numbers
   * nobody holds, each assigned by nine requests at once, three per server and
   * three per organization (random users, providers and isInboundEnabled), on
   * fresh connections. Rule 1 lets one organization win; rule 2 one inbound route.
   */
  async function firstClaims (freshNumbers: readonly string[]): Promise<void> {
    for (let batch = 0; batch < freshNumbers.length; batch += 5) {
      await Promise.all(freshNumbers.slice(batch, batch + 5).flatMap((phoneNumber) => Array.from({ length: 9 }, async (_, j) => {
        const organization = organizations[Math.floor(j / 3) % organizations.length]!
        const sample: Sample = {
          id: `fresh-${counter++}`,
          op: 'assign',
          server: j % serverCount,
          start: 0,
          end: 0,
          status: 0,
          body: undefined,
          organizationId: organization.id,
          phoneNumber,
          userId: pickOne(organization.userIds),
          provider: pickOne(PROVIDERS),
          isInboundEnabled: Math.random() < 0.5,
          isDefault: false
        }
        await sendAssign(false, sample)
        samples.push(sample)
      })))
    }
  }

  /**
   * One keep-alive connection to one server, used back to back: a connection left idle past
   * the server's keep-alive timeout (5 s) can be closed just as a request is sent on it (a
   * client-side ECONNRESET), so a worker does not spread its requests over three idle sockets.
   */
  async function worker (index: number, started: number, seconds: number): Promise<void> {
    const agent = newAgent()
    const server = index % serverCount
    while (performance.now() - started < seconds * 1000) {
      const roll = Math.random()
      const op: Op = roll < 0.4 ? 'assign' : roll < 0.55 ? 'remove' : roll < 0.72 ? 'transfer' : 'lookup'
      const sample: Sample = { id: `own-${index}-${counter++}`, op, server, start: 0, end: 0, status: 0, body: undefined, organizationId: '', phoneNumber: pickOne(numbers) }
      // Removes and transfers mostly aim at an entry believed held, else at a random one (mostly a 404).
      const held = [...believed.values()]
      const target = (op === 'remove' || op === 'transfer') && held.length > 0 && Math.random() < 0.85 ? pickOne(held) : undefined
      if (op === 'lookup') {
        const withProvider = Math.random() < 0.3
        if (withProvider) sample.provider = pickOne(PROVIDERS)
        await send(agent, sample, 'GET', `/api/phone-numbers/${encodeURIComponent(sample.phoneNumber)}/inbound-route${withProvider ? `?provider=${sample.provider!}` : ''}`)
      } else if (op === 'assign') {
        const owner = believedOwner.get(sample.phoneNumber)
        const organization = owner !== undefined && Math.random() < 0.75 ? organizations.find((o) => o.id === owner)! : pickOne(organizations)
        sample.organizationId = organization.id
        sample.userId = pickOne(organization.userIds)
        sample.provider = pickOne(PROVIDERS)
        sample.isInboundEnabled = Math.random() < 0.5
        sample.isDefault = Math.random() < 0.5
        if (Math.random() < 0.5) sample.label = `label ${rand(3)}`
        await sendAssign(agent, sample)
        if (sample.status === 200) {
          believed.set(keyOf(sample.userId, sample.provider, sample.phoneNumber), { userId: sample.userId, provider: sample.provider, phoneNumber: sample.phoneNumber })
          believedOwner.set(sample.phoneNumber, sample.organizationId)
        }
      } else {
        const userId = target?.userId ?? pickOne(pickOne(organizations).userIds)
        sample.organizationId = organizationOf.get(userId)!
        sample.userId = userId
        sample.provider = target?.provider ?? pickOne(PROVIDERS)
        sample.phoneNumber = target?.phoneNumber ?? sample.phoneNumber
        if (op === 'remove') {
          await send(agent, sample, 'DELETE', `/api/organizations/${sample.organizationId}/phone-numbers`, { targetUserId: userId, provider: sample.provider, phoneNumber: sample.phoneNumber })
          if (sample.status === 200 || sample.status === 404) believed.delete(keyOf(userId, sample.provider, sample.phoneNumber))
        } else {
          const others = organizations.find((o) => o.id === sample.organizationId)!.userIds.filter((id) => id !== userId)
          sample.toUserId = pickOne(others)
          if (Math.random() < 0.3) sample.label = `moved ${rand(2)}`
          await send(agent, sample, 'POST', `/api/organizations/${sample.organizationId}/phone-numbers/transfer`, {
            phoneNumber: sample.phoneNumber,
            provider: sample.provider,
            fromUserId: userId,
            toUserId: sample.toUserId,
            ...(sample.label === undefined ? {} : { label: sample.label })
          })
          if (sample.status === 200 || sample.status === 404) believed.delete(keyOf(userId, sample.provider, sample.phoneNumber))
          if (sample.status === 200) believed.set(keyOf(sample.toUserId, sample.provider, sample.phoneNumber), { userId: sample.toUserId, provider: sample.provider, phoneNumber: sample.phoneNumber })
        }
      }
      samples.push(sample)
    }
    agent.destroy()
  }

  return {
    samples,
    firstClaims,
    run: async (connections, started, seconds) => {
      await Promise.all(Array.from({ length: connections }, async (_, index) => { await worker(index, started, seconds) }))
    }
  }
}
