import t from 'tap'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

// Every relative link (and #anchor, as GitHub slugs headings) in the repository's Markdown resolves: the README is
// short and sends readers to docs/, so a moved page or a renamed heading must fail here, not in a reader's browser.

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')

function markdownFiles (dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name === 'coverage' || name.startsWith('.')) continue
    const path = join(dir, name)
    if (statSync(path).isDirectory()) markdownFiles(path, out)
    else if (path.endsWith('.md')) out.push(path)
  }
  return out
}

/** Lines outside fenced code blocks, with their 1-based numbers. */
function proseLines (file: string): Array<[number, string]> {
  const out: Array<[number, string]> = []
  let fence = false
  readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
    if (/^\s*```/.test(line)) fence = !fence
    else if (!fence) out.push([i + 1, line])
  })
  return out
}

const slug = (heading: string) => heading.trim().toLowerCase().replace(/<[^>]+>/g, '').replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-')

const anchorCache = new Map<string, Set<string>>()
function anchorsOf (file: string): Set<string> {
  let anchors = anchorCache.get(file)
  if (anchors !== undefined) return anchors
  anchors = new Set()
  const seen = new Map<string, number>()
  for (const [, line] of proseLines(file)) {
    const heading = /^#{1,6}\s+(.*)$/.exec(line)
    if (heading === null) continue
    const base = slug(heading[1])
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    anchors.add(n === 0 ? base : `${base}-${n}`)
  }
  anchorCache.set(file, anchors)
  return anchors
}

t.test('every relative link and anchor in the Markdown files resolves', async (t) => {
  const files = markdownFiles(ROOT)
  t.ok(files.some((f) => relative(ROOT, f) === 'README.md') && files.some((f) => relative(ROOT, f) === join('docs', 'protocol.md')), 'the README and docs/ are read')
  const broken: string[] = []
  let links = 0
  for (const file of files) {
    for (const [n, line] of proseLines(file)) {
      const text = line.replace(/`[^`]*`/g, '')
      for (const m of text.matchAll(/\]\(([^)\s]+)\)|<((?:\.\.?\/|[A-Za-z0-9_-]+\/)[^>\s]*)>/g)) {
        const target = m[1] ?? m[2]
        if (/^[a-z]+:/i.test(target)) continue
        links++
        const [path, anchor] = target.split('#')
        const abs = path === '' ? file : resolve(dirname(file), path)
        const where = `${relative(ROOT, file)}:${n} -> ${target}`
        if (!existsSync(abs)) broken.push(`missing ${where}`)
        else if (anchor !== undefined && abs.endsWith('.md') && !anchorsOf(abs).has(anchor)) broken.push(`no such heading ${where}`)
      }
    }
  }
  t.ok(links > 100, `${links} relative links in ${files.length} files`)
  t.same(broken, [], 'none broken')
})
