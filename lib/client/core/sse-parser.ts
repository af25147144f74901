/** One event of a `text/event-stream`. */
export interface SseMessage {
  /** the last event id in effect (the stream's, not only this event's `id:` line), verbatim */
  id: string
  /** `event:`, `message` when absent */
  event: string
  data: string
}

const LF = 10
const CR = 13
const COLON = 58
const SPACE = 32
const BOM = 0xfeff

/**
 * Incremental `text/event-stream` parser (the WHATWG algorithm): `feed(text)` returns the events completed by that
 * chunk as `{ id, event, data }` (`id` is the last event id in effect, `event` defaults to `message`). `retry` holds
 * the last valid `retry:` value. Lines may end in LF, CR or CRLF, also across chunks; comments are skipped.
 */
export class SseParser {
  #buffer = ''
  #data: string[] = []
  #event = ''
  #skipLF = false
  #started = false
  /** the last `id:` value seen (an id with a NUL is ignored, as browsers do) */
  lastEventId = ''
  /** the last valid `retry:` value in ms */
  retry: number | undefined = undefined

  feed (chunk: string): SseMessage[] {
    const events: SseMessage[] = []
    let text = chunk
    if (this.#skipLF && text.length > 0) {
      if (text.charCodeAt(0) === LF) text = text.slice(1)
      this.#skipLF = false
    }
    text = this.#buffer + text
    if (!this.#started && text.length > 0) {
      this.#started = true
      if (text.charCodeAt(0) === BOM) text = text.slice(1)
    }
    let pos = 0
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (c !== LF && c !== CR) continue
      this.#line(text.slice(pos, i), events)
      if (c === CR) {
        if (i + 1 === text.length) this.#skipLF = true
        else if (text.charCodeAt(i + 1) === LF) i++
      }
      pos = i + 1
    }
    this.#buffer = text.slice(pos)
    return events
  }

  #line (line: string, events: SseMessage[]): void {
    if (line === '') {
      if (this.#data.length > 0) {
        events.push({ id: this.lastEventId, event: this.#event === '' ? 'message' : this.#event, data: this.#data.join('\n') })
      }
      this.#data = []
      this.#event = ''
      return
    }
    if (line.charCodeAt(0) === COLON) return // a comment (`: ping`)
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.charCodeAt(0) === SPACE) value = value.slice(1)
    if (field === 'data') this.#data.push(value)
    else if (field === 'event') this.#event = value
    else if (field === 'id') {
      if (!value.includes('\0')) this.lastEventId = value
    } else if (field === 'retry') {
      if (/^\d+$/.test(value)) this.retry = Number(value)
    }
  }
}
