// The SMTP receiver of the delivery tests: a real SMTP server (smtp-server, parsed with mailparser)
// recording exactly what arrived, plus helpers to read the messages. HTTP receivers are the testing
// kit's `startReceiver` (@cairn/server/testing).
import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/** One message an SMTP receiver accepted. */
export interface ReceivedMail {
  /** Envelope recipients. */
  to: string[];
  mail: ParsedMail;
}

/**
 * A real SMTP server on loopback (plain SMTP, no STARTTLS, no auth) that accepts every message and
 * keeps it parsed.
 *
 * @example
 * const smtp = await smtpReceiver();
 * // destination settings: { host: '127.0.0.1', port: smtp.port, ... }
 */
export async function smtpReceiver() {
  const mails: ReceivedMail[] = [];
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    logger: false,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        simpleParser(Buffer.concat(chunks)).then(
          (mail) => {
            mails.push({ to: session.envelope.rcptTo.map((r) => r.address), mail });
            cb(null, 'queued');
          },
          (err: Error) => cb(err),
        );
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    mails,
    port: (server.server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A raw header of a parsed message, unfolded ('' when absent). */
export function headerOf(mail: ParsedMail, name: string): string {
  const line = mail.headerLines.find((h) => h.key === name.toLowerCase())?.line ?? '';
  return line
    .replace(/\r?\n[ \t]+/g, ' ')
    .slice(line.indexOf(':') + 1)
    .trim();
}

/** The https/http URL of a message's `List-Unsubscribe` header (RFC 2369: `<url>`). */
export function unsubscribeUrlOf(mail: ParsedMail): string {
  const value = headerOf(mail, 'list-unsubscribe');
  const url = /<(https?:\/\/[^>]+)>/.exec(value)?.[1];
  if (!url) throw new Error(`no http(s) List-Unsubscribe URL in ${JSON.stringify(value)}`);
  return url.replace(/\s+/g, '');
}
