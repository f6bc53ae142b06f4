import type { Command } from "../command.js";
import { adminCommands } from "./admin.js";
import { chainingCommands } from "./chaining.js";
import { childrenCommands } from "./children.js";
import { envCommands } from "./env.js";
import { execCommand } from "./exec.js";
import { fileCommands } from "./files.js";
import { hierarchyCommands } from "./hierarchy.js";
import { logsCommand } from "./logs.js";
import { runCommands } from "./runs.js";
import { snapshotCommands } from "./snapshots.js";

export const COMMANDS: Command[] = [...envCommands, execCommand, ...fileCommands, ...runCommands, logsCommand, ...chainingCommands, ...snapshotCommands, ...hierarchyCommands, ...childrenCommands, ...adminCommands];
