/**
 * A strict well-formedness check for the XML the project writes (SVG): one root element, every
 * tag closed in order, attributes quoted and unique, no raw '<' or stray '&' in text or
 * attributes. Returns the problems found (empty: well-formed). No DTDs, CDATA or processing
 * instructions other than a leading XML declaration: the project writes none.
 */
const NAME = '[A-Za-z_][\\w:.-]*';
const ATTR = new RegExp(`\\s+(${NAME})\\s*=\\s*"([^"<]*)"`, 'y');
const ENTITY = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/;

export function xmlProblems(text: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  const src = text.replace(/^<\?xml[^>]*\?>/, '').replace(/<!--[\s\S]*?-->/g, (c) => ' '.repeat(c.length));
  while (i < src.length) {
    const lt = src.indexOf('<', i);
    const chunk = src.slice(i, lt < 0 ? src.length : lt);
    if (ENTITY.test(chunk)) problems.push(`a stray '&' in text near ${i}`);
    if (stack.length === 0 && chunk.trim() !== '') problems.push(`text outside the root element near ${i}`);
    if (lt < 0) break;
    const close = /^<\/([A-Za-z_][\w:.-]*)\s*>/.exec(src.slice(lt));
    if (close) {
      const open = stack.pop();
      if (open !== close[1]) problems.push(`</${close[1]}> closes <${open ?? 'nothing'}> near ${lt}`);
      i = lt + close[0].length;
      continue;
    }
    const name = new RegExp(`<(${NAME})`, 'y');
    name.lastIndex = lt;
    const m = name.exec(src);
    if (!m) {
      problems.push(`a '<' that starts no tag near ${lt}`);
      i = lt + 1;
      continue;
    }
    let j = lt + m[0].length;
    const seen = new Set<string>();
    for (;;) {
      ATTR.lastIndex = j;
      const a = ATTR.exec(src);
      if (!a) break;
      if (seen.has(a[1]!)) problems.push(`<${m[1]}> repeats the attribute ${a[1]}`);
      seen.add(a[1]!);
      if (ENTITY.test(a[2]!)) problems.push(`a stray '&' in <${m[1]} ${a[1]}>`);
      j = ATTR.lastIndex;
    }
    const end = /\s*(\/?)>/y;
    end.lastIndex = j;
    const e = end.exec(src);
    if (!e) {
      problems.push(`<${m[1]}> is malformed near ${j}`);
      i = j;
      continue;
    }
    if (stack.length === 0) roots++;
    if (!e[1]) stack.push(m[1]!);
    i = end.lastIndex;
  }
  if (stack.length) problems.push(`unclosed: ${stack.join(' > ')}`);
  if (roots !== 1) problems.push(`${roots} root elements`);
  return problems;
}
