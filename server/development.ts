/**
 * Conveniences for the embedded development database only: a persistent
 * development JWT secret, SUPERADMIN tokens (signed by tools/tokens.ts), and demo data matching the
 * contract's examples so the README's curl commands work at once.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ObjectId, type Db } from 'mongodb'
import { mintToken } from '../tools/tokens.js'

const SECRET_FILE = join(process.cwd(), '.cache', 'dev-jwt-secret')

export const DEMO_ORGANIZATION_ID = '5f7b1c2e8a1d4e0012c3b4a0'
export const DEMO_USER_ID = '5f7b1c2e8a1d4e0012c3b4a6'
/** A second agent of the demo organization, to transfer a number to. */
export const DEMO_SECOND_USER_ID = '5f7b1c2e8a1d4e0012c3b4a7'
export const DEMO_ADMIN_ID = '5f7b1c2e8a1d4e0012c3b4a1'

/** Reads the development secret, creating it (git-ignored, mode 600) on first use. */
export async function developmentSecret (): Promise<string> {
  try {
    return (await readFile(SECRET_FILE, 'utf8')).trim()
  } catch {
    const secret = randomBytes(32).toString('hex')
    await mkdir(join(process.cwd(), '.cache'), { recursive: true })
    await writeFile(SECRET_FILE, `${secret}\n`, { mode: 0o600 })
    return secret
  }
}

export function superAdminToken (secret: string, expiresIn?: string): Promise<string> {
  return mintToken(secret, { sub: DEMO_ADMIN_ID, role: 'SUPERADMIN' }, expiresIn)
}

/** Inserts the demo organization and users unless they exist. */
export async function seedDemoData (db: Db, usersCollection: string, organizationsCollection: string): Promise<void> {
  const organizationId = new ObjectId(DEMO_ORGANIZATION_ID)
  await db.collection(organizationsCollection).updateOne(
    { _id: organizationId },
    { $setOnInsert: { name: 'Demo organization' } },
    { upsert: true }
  )
  const demoUsers = [[DEMO_USER_ID, 'Demo agent', 'AGENT'], [DEMO_SECOND_USER_ID, 'Second demo agent', 'AGENT'], [DEMO_ADMIN_ID, 'Demo super admin', 'SUPERADMIN']] as const
  for (const [id, name, role] of demoUsers) {
    await db.collection(usersCollection).updateOne(
      { _id: new ObjectId(id) },
      { $setOnInsert: { name, role, organizationId } },
      { upsert: true }
    )
  }
}
