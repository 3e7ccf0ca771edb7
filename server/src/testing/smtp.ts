import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/** One message an SMTP receiver accepted. */
export interface ReceivedMail {
  /** Envelope recipients. */
  to: string[];
  mail: ParsedMail;
}

/** A running {@link smtpReceiver}. */
export interface SmtpReceiver {
  /** Every message accepted so far, in order. */
  mails: ReceivedMail[];
  port: number;
  close(): Promise<void>;
}

/**
 * A real SMTP server on loopback (plain SMTP, no STARTTLS, no auth) that accepts every message and
 * keeps it parsed (mailparser; `cid:` links kept as they are, so inline images can be matched to their
 * parts). Not exported from the testing kit's index: smtp-server and mailparser are dev dependencies.
 *
 * @example
 * const smtp = await smtpReceiver();
 * // destination settings: { host: '127.0.0.1', port: smtp.port, ... }
 * const parsed = smtp.mails.map((m) => m.mail);
 */
export async function smtpReceiver(options: { onMail?: (mail: ParsedMail) => void } = {}): Promise<SmtpReceiver> {
  const mails: ReceivedMail[] = [];
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    logger: false,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        simpleParser(Buffer.concat(chunks), { keepCidLinks: true }).then(
          (mail) => {
            mails.push({ to: session.envelope.rcptTo.map((r) => r.address), mail });
            options.onMail?.(mail);
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
