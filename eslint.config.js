import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tap/**', 'coverage/**', 'public/client.js', 'public/client.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // no `any`: tests may disable it on one line with a reason (`-- why`)
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-empty': ['error', { allowEmptyCatch: true }]
    }
  },
  {
    // Transitional: files being rewritten by their owners this turn still carry `any`. A warning, not an error, until
    // each lands; remove a file from this list once it is clean (`npx eslint <file>` shows no warning).
    files: [
      'bench/lib/proc.ts',
      'lib/kafka/processor.ts', 'plugins/kafka.ts', 'test/kafka-units.test.ts',
      'lib/rooms/types.ts',
      'plugins/external.ts', 'plugins/stripe.ts', 'test/external-hooks.test.ts', 'test/external-lib.test.ts',
      'test/external-server.test.ts', 'test/external.test.ts',
      'test/helpers/instance.ts', 'test/helpers/tools.ts'
    ],
    rules: { '@typescript-eslint/no-explicit-any': 'warn' }
  },
  {
    files: ['public/**/*.js'],
    languageOptions: { globals: { window: 'readonly', document: 'readonly', WebSocket: 'readonly', EventSource: 'readonly', RTCPeerConnection: 'readonly', navigator: 'readonly', console: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', URL: 'readonly', location: 'readonly', fetch: 'readonly', Math: 'readonly' } }
  }
)
