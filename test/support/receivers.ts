// The SMTP receiver of the delivery tests: a real SMTP server (smtp-server, parsed with mailparser)
// recording exactly what arrived, plus helpers to read the messages. HTTP receivers are the testing
// kit's `startReceiver` (@cairn/server/testing).
import type { ParsedMail } from 'mailparser';

// The receiver lives in the server's testing kit (server tests use it too); not in its index, as
// smtp-server and mailparser are dev dependencies.
export { type ReceivedMail, type SmtpReceiver, smtpReceiver } from '../../server/src/testing/smtp.ts';

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
