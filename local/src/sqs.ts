/**
 * The SQS service: the queues of the assembly (in memory), the SendMessage/GetQueueUrl API the handlers call,
 * redrive to a dead-letter queue after maxReceiveCount receives, and the Lambda event source mappings that read
 * queues (batches, partial batch failures through `batchItemFailures`).
 */
import { randomUUID } from 'node:crypto';
import type { LocalAssembly, LocalResource } from './assembly';
import { ValidationException } from './eventbridge';

export interface LocalQueue {
  readonly name: string;
  readonly arn: string;
  readonly messages: Array<{ id: string; body: string; receives: number }>;
  readonly redrive?: { deadLetterArn: string; maxReceiveCount: number };
}

export class Sqs {
  private readonly queues = new Map<string, LocalQueue>();
  private readonly timers: NodeJS.Timeout[] = [];
  /** The pollers of the event source mappings, by queue ARN: a message sent is picked up at once (like long polling). */
  private readonly pollers = new Map<string, Array<() => void>>();
  private stopped = false;

  constructor(
    private readonly assembly: LocalAssembly,
    private readonly log: (line: string) => void,
    private readonly track: (work: Promise<unknown>) => void,
  ) {}

  public configure(resources: LocalResource[]): void {
    for (const r of resources.filter((x) => x.type === 'AWS::SQS::Queue')) {
      const props = r.stack.resolve(r.properties) as Record<string, any>;
      const name = r.stack.physicalId(r.logicalId);
      const arn = r.stack.arn(r.logicalId);
      this.queues.set(arn, {
        name,
        arn,
        messages: [],
        redrive: props.RedrivePolicy
          ? { deadLetterArn: String(props.RedrivePolicy.deadLetterTargetArn), maxReceiveCount: Number(props.RedrivePolicy.maxReceiveCount) }
          : undefined,
      });
    }
  }

  public queue(ref: string): LocalQueue | undefined {
    return this.queues.get(ref) ?? [...this.queues.values()].find((q) => ref.endsWith(`/${q.name}`) || ref.endsWith(`:${q.name}`));
  }

  /** SendMessage; throws if there is no such queue. */
  public sendMessage(ref: string, body: string): string {
    const queue = this.queue(ref);
    if (!queue) throw Object.assign(new Error(`The specified queue does not exist: ${ref}`), { name: 'QueueDoesNotExist' });
    const id = randomUUID();
    queue.messages.push({ id, body, receives: 0 });
    for (const poll of this.pollers.get(queue.arn) ?? []) setImmediate(poll);
    return id;
  }

  /** The JSON protocol API (`X-Amz-Target: AmazonSQS.<Action>`) the SDK in the handlers calls. */
  public action(target: string, input: unknown): Record<string, unknown> {
    if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new ValidationException('The request body must be a JSON object');
    const i = input as Record<string, unknown>;
    if (target === 'AmazonSQS.SendMessage') {
      if (typeof i.QueueUrl !== 'string' || typeof i.MessageBody !== 'string' || i.MessageBody.length === 0) throw new ValidationException('QueueUrl and a non-empty MessageBody are required');
      return { MessageId: this.sendMessage(i.QueueUrl, i.MessageBody) };
    }
    if (target === 'AmazonSQS.GetQueueUrl') {
      if (typeof i.QueueName !== 'string' || !this.queue(`/${i.QueueName}`)) throw Object.assign(new Error('The specified queue does not exist.'), { name: 'QueueDoesNotExist' });
      return { QueueUrl: this.assembly.queueUrl(i.QueueName) };
    }
    throw new ValidationException(`SQS action ${target || '(none)'} is not emulated`);
  }

  /** The messages currently in a queue (by name), e.g. to inspect a dead-letter queue. */
  public messages(name: string): string[] {
    return [...this.queues.values()].filter((q) => q.name.includes(name)).flatMap((q) => q.messages.map((m) => m.body));
  }

  /** Starts the event source mappings that read queues. */
  public startMappings(resources: LocalResource[], invoke: (fn: string, event: unknown) => Promise<unknown>, pollIntervalMs: number): void {
    for (const r of resources.filter((x) => x.type === 'AWS::Lambda::EventSourceMapping')) {
      const props = r.stack.resolve(r.properties) as Record<string, any>;
      const source = String(props.EventSourceArn);
      if (!source.includes(':sqs:')) continue;
      const queue = this.queue(source);
      const fn = String(props.FunctionName);
      if (!queue) continue;
      this.log(`  queue ${queue.name} -> ${fn}`);
      const batchSize = Number(props.BatchSize ?? 10);
      let busy = false;
      const poll = () => {
        if (busy || this.stopped || queue.messages.length === 0) return;
        busy = true;
        let failed = 0;
        const batch = queue.messages.splice(0, batchSize);
        const work = invoke(fn, {
          Records: batch.map((m) => ({ messageId: m.id, body: m.body, attributes: { ApproximateReceiveCount: String(m.receives + 1) }, eventSource: 'aws:sqs', eventSourceARN: queue.arn })),
        })
          .then((out) => (out as { batchItemFailures?: Array<{ itemIdentifier: string }> })?.batchItemFailures ?? [])
          .catch(() => batch.map((m) => ({ itemIdentifier: m.id })))
          .then((failures) => {
            for (const m of batch.filter((b) => failures.some((f) => f.itemIdentifier === b.id))) {
              failed++;
              m.receives++;
              if (queue.redrive && m.receives >= queue.redrive.maxReceiveCount) this.sendMessage(queue.redrive.deadLetterArn, m.body);
              else queue.messages.push(m);
            }
          })
          .finally(() => {
            busy = false;
            // The next batch at once; a batch with failures is retried at the next interval, not in a tight loop.
            if (failed === 0 && queue.messages.length > 0) setImmediate(poll);
          });
        this.track(work);
      };
      this.pollers.set(queue.arn, [...(this.pollers.get(queue.arn) ?? []), poll]);
      this.timers.push(setInterval(poll, pollIntervalMs));
    }
  }

  public stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
  }
}
