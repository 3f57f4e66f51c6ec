// The mail drill's arithmetic (issue 12), pure so it is tested directly: what the sending MTA's
// log says happened to each message (Postfix's own lines: which queue id carried which
// Message-ID, where and with what status each delivery went), and what the mailboxes of the two
// servers hold at the end — sent, delivered, lost, duplicated, both sides identical.

/** One delivery attempt of the sending Postfix (a `postfix/smtp` line with `status=`). */
export interface Delivery {
  queueId: string;
  to: string;
  /** The MX host name as Postfix logged it (`mx2.example.com`), or "none". */
  relay: string;
  /** The address it connected to, when it connected. */
  relayIp?: string;
  status: "sent" | "deferred" | "bounced" | "expired";
  /** The rest of the line after the status: the reply or the reason. */
  detail: string;
}

const SMTP_LINE =
  /[\w-]+(?:\/[\w-]+)*\/smtp\[\d+\]: ([0-9A-Za-z]+): to=<([^>]*)>, relay=([^\s,[]+)(?:\[([\d.]+)\](?::\d+)?)?,.*? status=(sent|deferred|bounced|expired) ?(.*)$/;
const MESSAGE_ID_LINE =
  /[\w-]+(?:\/[\w-]+)*\/cleanup\[\d+\]: ([0-9A-Za-z]+): message-id=<?([^>\s]+)>?/;

/** The deliveries and the queue id → Message-ID map of a Postfix log (any order of lines). */
export function parsePostfixLog(text: string): {
  deliveries: Delivery[];
  messageIds: Map<string, string>;
} {
  const deliveries: Delivery[] = [];
  const messageIds = new Map<string, string>();
  for (const line of text.split("\n")) {
    const d = SMTP_LINE.exec(line);
    if (d) {
      deliveries.push({
        queueId: d[1],
        to: d[2],
        relay: d[3],
        relayIp: d[4],
        status: d[5] as Delivery["status"],
        detail: d[6].trim(),
      });
      continue;
    }
    const m = MESSAGE_ID_LINE.exec(line);
    if (m) {
      messageIds.set(m[1], m[2]);
    }
  }
  return { deliveries, messageIds };
}

/** Message-IDs from `Message-ID:` header lines (one per stored message, as grep prints them). */
export function messageIdsOf(headerLines: string): string[] {
  const out: string[] = [];
  for (const line of headerLines.split("\n")) {
    const m = /^message-id:\s*<?([^>\s]+)>?/i.exec(line.trim());
    if (m) {
      out.push(m[1]);
    }
  }
  return out;
}

export interface StreamCount {
  /** Messages the sending MTA accepted from the drill (its queue took them). */
  sent: number;
  /** Of those, how many are in the user's mailbox on the side that counts (the active one). */
  delivered: number;
  /** Sent and in neither mailbox: must be 0. */
  lost: number;
  /** Extra copies of a sent message on the side that counts (a message stored twice). */
  duplicated: number;
  /** The two sides hold exactly the same messages, copies included. */
  identical: boolean;
  lostIds: string[];
  duplicatedIds: string[];
  /** Messages one side holds and the other does not (first few each way). */
  onlyPrimary: string[];
  onlyStandby: string[];
}

function tally(ids: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const id of ids) {
    m.set(id, (m.get(id) ?? 0) + 1);
  }
  return m;
}

/**
 * Counts the drill's stream: `sent` Message-IDs against what each server's mailbox holds at the
 * end (after the final sync). Only the drill's own messages count (`isDrill`); the mailbox may
 * hold anything else. Delivered and duplicated are counted on the primary, which is active again
 * at the end; lost means on neither side.
 */
export function countStream(
  sent: string[],
  mailboxes: { primary: string[]; standby: string[] },
  isDrill: (id: string) => boolean = () => true,
): StreamCount {
  const p = tally(mailboxes.primary.filter(isDrill));
  const s = tally(mailboxes.standby.filter(isDrill));
  const sentSet = new Set(sent);
  const lostIds = [...sentSet].filter((id) => !p.has(id) && !s.has(id));
  const duplicatedIds = [...p].filter(([, n]) => n > 1).map(([id]) => id);
  const duplicated = [...p.values()].reduce((a, n) => a + (n > 1 ? n - 1 : 0), 0);
  const onlyPrimary = [...p].filter(([id, n]) => (s.get(id) ?? 0) !== n).map(([id]) => id);
  const onlyStandby = [...s].filter(([id, n]) => (p.get(id) ?? 0) !== n).map(([id]) => id);
  return {
    sent: sentSet.size,
    delivered: [...sentSet].filter((id) => p.has(id)).length,
    lost: lostIds.length,
    duplicated,
    identical: onlyPrimary.length === 0 && onlyStandby.length === 0,
    lostIds,
    duplicatedIds,
    onlyPrimary,
    onlyStandby,
  };
}

/** The lines of a stream of times as seconds after `t0`, one decimal (null when none). */
export function secondsAfter(t0: number, t: number | undefined): number | null {
  return t === undefined ? null : Math.round((t - t0) / 100) / 10;
}

/**
 * Where the deliveries of the drill's messages went while a server was meant to take no
 * traffic: every `sent` delivery whose relay IP is one of `forbidden` (the fenced server's
 * addresses), by Message-ID.
 */
export function deliveriesTo(
  log: { deliveries: Delivery[]; messageIds: Map<string, string> },
  forbidden: string[],
  isDrill: (id: string) => boolean,
): string[] {
  return log.deliveries
    .filter((d) => d.status === "sent" && d.relayIp !== undefined && forbidden.includes(d.relayIp))
    .map((d) => log.messageIds.get(d.queueId) ?? `queue id ${d.queueId}`)
    .filter((id) => id.startsWith("queue id") || isDrill(id));
}
