{ The memo demo without its form: every instance with the same map name
  shows the same lines, live. Lines typed in one instance appear in all.

    memo [NAME [INITIAL-FILE]]

  NAME defaults to "memo". When this instance creates the map, it loads the
  initial lines from INITIAL-FILE (if given). Type a line and Enter to add
  it; "-" alone clears the memo; end of input (Ctrl-D) quits. }
program memo;

{$mode objfpc}{$H+}

uses
  {$ifdef unix}cthreads,{$endif}
  Classes, SysUtils, filemap;

type
  { Reads standard input on its own thread and hands each line to the
    main thread, which is busy delivering changes. }
  TInputThread = class(TThread)
  private
    FLine: string;
    procedure Hand;
  protected
    procedure Execute; override;
  end;

  TDemo = class
    Map: TFileMap;
    Done: Boolean;
    procedure Changed(Sender: TObject);
    procedure Typed(const Line: string);
    procedure Show(const Why: string);
  end;

var
  Demo: TDemo;
  Reader: TInputThread;

procedure TInputThread.Hand;
begin
  Demo.Typed(FLine);
end;

procedure TInputThread.Execute;
begin
  while not EOF(System.Input) do
  begin
    ReadLn(System.Input, FLine);
    Synchronize(@Hand);
  end;
  Demo.Done := True;
end;

procedure TDemo.Show(const Why: string);
var
  I: Integer;
begin
  WriteLn('--- ', Why, ' (generation ', Map.Generation, ', ', Map.MapStrings.Count, ' lines)');
  for I := 0 to Map.MapStrings.Count - 1 do
    WriteLn(Map.MapStrings[I]);
  Flush(Output);
end;

procedure TDemo.Changed(Sender: TObject);
begin
  Show('changed by another instance');
end;

procedure TDemo.Typed(const Line: string);
begin
  try
    if Line = '-' then
      Map.Clear
    else
      { AutoSynchronize: the change is written through. }
      Map.MapStrings.Add(Line);
    Show('written');
  except
    on E: EFileMapError do
    begin
      WriteLn('not written: ', E.Message);
      { The map kept its content: show that, not the rejected edit. }
      Map.ReadMap;
      Show('kept');
    end;
  end;
end;

var
  MapName: string;
begin
  MapName := 'memo';
  if ParamCount >= 1 then
    MapName := ParamStr(1);
  Demo := TDemo.Create;
  Demo.Map := TFileMap.Create(nil);
  try
    Demo.Map.MapName := MapName;
    Demo.Map.OnChange := @Demo.Changed;
    if (ParamCount >= 2) and FileExists(ParamStr(2)) then
      { Written by OpenMap only if this instance creates the map; an
        existing map's lines replace these. }
      Demo.Map.MapStrings.LoadFromFile(ParamStr(2));
    Demo.Map.OpenMap;
    Demo.Map.AutoSynchronize := True;
    if Demo.Map.ExistsAlready then
      Demo.Show('attached to ' + MapName)
    else
      Demo.Show('created ' + MapName);
    Reader := TInputThread.Create(False);
    while not Demo.Done do
      Demo.Map.ProcessChanges(100);
    Reader.WaitFor;
    Reader.Free;
  finally
    Demo.Map.Free;
    Demo.Free;
  end;
end.
