// Public entry of the contract code generator: schemas/openapi.yaml -> schemas/generated/*.ts.
/**
 * Pure modules (no file-system access): `generateFiles(yamlText)` returns the
 * content of every generated file keyed by its path relative to the repo root.
 * `scripts/generate.ts` is the CLI that writes them; the drift test runs this
 * in memory. generate-files.ts assembles the files from operations.ts (the
 * contract's structure), schema-to-typebox.ts (one schema -> TypeBox source),
 * prelude.ts (runtime checks the generated module registers) and literals.ts.
 *
 * Why a hand-written OpenAPI -> TypeBox converter (checked on npm first):
 * - @sinclair/typebox-codegen 0.11.1 only converts TypeScript source (or its
 *   own model) to TypeBox; it has no JSON Schema / OpenAPI input. Going through
 *   openapi-typescript's TS output would lose pattern, maxLength, format,
 *   default and additionalProperties, and string unions come out as
 *   Type.Union of Type.Literal (JSON Schema `anyOf`, not `enum`).
 * - schema2typebox 1.7.8 (JSON Schema -> TypeBox) cannot follow
 *   `#/components/schemas/*` refs ("Token components does not exist"), turns
 *   enums into Type.Union of Literals (`anyOf`) and `additionalProperties:
 *   true` into a Type.Union with a Type.Record: not the same JSON Schema.
 * - @geut/openapi-box 5.0.8 emits plain JS, drops every `description`, turns
 *   enums into anyOf-of-const, `enum: [true]` into `const: true`, and
 *   `components.responses` into Type.Any().
 * None produces a JSON Schema equal to the contract's, which is what Fastify
 * validates and serialises with, so schema-to-typebox.ts emits exactly the
 * keywords of the contract and nothing else
 * (test/contract/contract-equivalence-schemas.test.ts proves the equality). It supports the OpenAPI 3.0 subset this project uses
 * and throws on anything else rather than silently dropping a constraint.
 */
export { BANNER, ContractCodegenError, OUTPUT_PATHS, YAML_PATH } from './common.js'
export { generateFiles, parseContract } from './generate-files.js'
export { quoteString } from './literals.js'
export { collectOperations, dependencyOrder, fastifyUrl, pascalCase, type OperationInfo } from './operations.js'
export { convertSchema, type ConvertContext } from './schema-to-typebox.js'
