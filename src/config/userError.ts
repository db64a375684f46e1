/**
 * An error the user can fix (a bad config, flag, period or prices file): the CLI prints its
 * description and exits 2, never a stack trace. `scope` names the command it is about.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly scope = '',
  ) {
    super(message);
    this.name = new.target.name;
  }

  describe(): string {
    return `cachelens${this.scope ? ` ${this.scope}` : ''}: ${this.message}\n`;
  }
}
