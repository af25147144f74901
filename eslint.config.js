import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tap/**', 'coverage/**', 'public/client.js', 'public/client.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-empty': ['error', { allowEmptyCatch: true }]
    }
  },
  {
    // the browser client and the demo routes: no `any` (typed end to end)
    files: ['lib/client/**/*.ts', 'scripts/**/*.ts', 'routes/demo.ts', 'routes/ws-presence.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'error' }
  },
  {
    files: ['public/**/*.js'],
    languageOptions: { globals: { window: 'readonly', document: 'readonly', WebSocket: 'readonly', EventSource: 'readonly', RTCPeerConnection: 'readonly', navigator: 'readonly', console: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', URL: 'readonly', location: 'readonly', fetch: 'readonly', Math: 'readonly' } }
  }
)
