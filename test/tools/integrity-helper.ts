/**
 * Shared by the integrity-*.test.ts files (the integrity check and its CLI):
 * byte-for-byte snapshots of a collection, and what the database seeded by
 * integrity-seed.ts must report in user documents.
 */
import { BSON, type Db, type ObjectId } from 'mongodb'
import type { IntegrityReport } from '../../tools/integrity/index.js'
import { NUMBERS as N, type SeededIds } from './integrity-seed.js'

export const hex = (id: ObjectId): string => id.toHexString()

/** Every document of a collection as stored, by _id: byte-for-byte comparisons. */
export async function snapshot (db: Db, collection: string): Promise<Map<string, Buffer>> {
  const documents = await db.collection(collection).find({}).toArray()
  return new Map(documents.map((document) => [String(document._id), Buffer.from(BSON.serialize(document))]))
}

/** What the seeded database must report in user documents (repairs never change these). */
export function expectedUserViolations (ids: SeededIds): Pick<IntegrityReport, 'numbersInTwoOrganizations' | 'doubleInboundRoutes' | 'malformedEntries' | 'malformedFields'> {
  return {
    numbersInTwoOrganizations: [{
      phoneNumber: N.twoOrganizations,
      holders: [
        { userId: hex(ids.a1), organizationId: hex(ids.orgA), provider: 'twilio', isInboundEnabled: true },
        { userId: hex(ids.b1), organizationId: hex(ids.orgB), provider: 'sinch', isInboundEnabled: false }
      ]
    }],
    doubleInboundRoutes: [{
      phoneNumber: N.twoInboundRoutes,
      holders: [
        { userId: hex(ids.a1), organizationId: hex(ids.orgA), provider: 'twilio', isInboundEnabled: true },
        { userId: hex(ids.a2), organizationId: hex(ids.orgA), provider: 'sinch', isInboundEnabled: true }
      ]
    }],
    malformedEntries: [
      { userId: hex(ids.a3), index: 0, reason: 'null entry' },
      { userId: hex(ids.a3), index: 1, reason: 'a string, not an object' },
      { userId: hex(ids.a3), index: 2, reason: 'isDefault is missing' }
    ],
    malformedFields: [{ userId: hex(ids.badField), type: 'string', reason: 'phoneNumbers is a string, not an array' }]
  }
}

export function userViolations (report: IntegrityReport): ReturnType<typeof expectedUserViolations> {
  const { numbersInTwoOrganizations, doubleInboundRoutes, malformedEntries, malformedFields } = report
  return { numbersInTwoOrganizations, doubleInboundRoutes, malformedEntries, malformedFields }
}
