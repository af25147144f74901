import t from 'tap'
import { readFileSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildTestApp } from './helpers/app.js'
import { parseExposition } from './helpers/prometheus.js'
import { requireTool } from './helpers/tools.js'

// docs/grafana-dashboard.json: an importable dashboard whose every query is valid PromQL over families /metrics has.

interface Target { expr: string, datasource: { type: string, uid: string }, refId: string }
interface Panel { id: number, type: string, title: string, gridPos: { x: number, y: number, w: number, h: number }, targets?: Target[], datasource?: { uid: string } }
const dashboard = JSON.parse(readFileSync(new URL('../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as {
  uid: string, title: string, schemaVersion: number, panels: Panel[], templating: { list: Array<{ name: string, type: string, query: unknown }> }
}
const queries = dashboard.panels.flatMap((p) => p.targets ?? []).map((target) => target.expr)

t.test('the dashboard has the shape Grafana imports: uid, panels on the 24-column grid, a Prometheus data source variable', async (t) => {
  t.equal(dashboard.uid, 'fastify-gateways')
  t.type(dashboard.schemaVersion, 'number')
  const ids = dashboard.panels.map((p) => p.id)
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  for (const panel of dashboard.panels) {
    t.ok(panel.gridPos.x + panel.gridPos.w <= 24, `${panel.title} fits the grid`)
    if (panel.type === 'row') continue
    t.ok(['stat', 'timeseries'].includes(panel.type), `${panel.title}: a core panel type`)
    t.equal(panel.datasource?.uid, '${datasource}')
    t.ok((panel.targets ?? []).length > 0, `${panel.title} has queries`)
    for (const target of panel.targets ?? []) t.equal(target.datasource.uid, '${datasource}')
  }
  const variables = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v]))
  t.match(variables.datasource, { type: 'datasource', query: 'prometheus' })
  t.match(variables.instance, { type: 'query' })
  t.ok(queries.length >= 20)
})

t.test('every query parses as PromQL (promtool) and uses only families that /metrics exposes', async (t) => {
  const { app } = await buildTestApp({ METRICS: 'true', GATEWAYS: 'ws' })
  t.after(() => app.close())
  await app.inject('/health')
  const exposed = new Set(parseExposition((await app.inject('/metrics')).body).map((s) => s.name))
  const used = new Set(queries.flatMap((q) => [...q.matchAll(/\b([a-z_:][a-z0-9_:]*)\s*(?:\{|\[)/g)].map((m) => m[1])))
  for (const name of used) t.ok(exposed.has(name), `${name} is exposed`)
  t.ok(used.has('gateways_connections') && used.has('gateways_disconnects_total') && used.has('gateways_stream_messages_total'))

  const promtool = requireTool(t, 'promtool', ['/usr/bin/promtool'])
  if (promtool === null) return
  const dir = mkdtempSync(join(tmpdir(), 'gw-grafana-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  // Grafana's variables as Prometheus would see them after substitution
  const rules = queries.map((q, i) => `      - record: dashboard:query${i}\n        expr: ${JSON.stringify(q.replaceAll('$__rate_interval', '1m').replaceAll('$instance', '.*'))}`)
  writeFileSync(join(dir, 'rules.yml'), `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`)
  const result = spawnSync(promtool, ['check', 'rules', join(dir, 'rules.yml')], { encoding: 'utf8', timeout: 20_000 })
  t.equal(result.status, 0, `${result.stdout}${result.stderr}`)
  t.match(result.stdout, new RegExp(`SUCCESS: ${queries.length} rules found`))
})
